"""The deployable model bundle: one folder (or one .cxrb archive of it) holding manifest.json, its signature
manifest.sig, stage1.tflite, stage2.tflite, ood.npz, selftest.npz, parity.json, parity.md and reliability.png. The box reads
nothing else. Loading verifies the format version, every listed file's size and sha256, the publisher's signature
against the trusted keys, and `deployable`, and names the file and the problem when any check fails."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cxr_edge.bundle.archive import read_archive
from cxr_edge.bundle.files import (
    BUNDLE_FILES,
    DATA_FILES,
    ENV_VAR,
    FORMAT_VERSION,
    MANIFEST,
    MODEL_FILES,
    OOD_FILE,
    SELFTEST_FILE,
    SIGNATURE_FILE,
    BundleError,
    sha256_bytes,
)
from cxr_edge.bundle.selftest import KnownAnswers
from cxr_edge.bundle.signature import Origin, TrustStore, check_origin
from cxr_edge.models.ood import OODStats


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict
    models: dict[str, bytes]  # file name -> verified bytes
    origin: Origin | None = None  # who signed it; None when not checked (cxr-edge info checks on its own)
    manifest_sha256: str = ""  # the bundle's identity, which a site file names

    @property
    def threshold(self) -> float:
        return float(self.manifest["stage1_threshold"])

    @property
    def input_size(self) -> int:
        return int(self.manifest["input"]["size"])

    @property
    def deployable(self) -> bool:
        return bool(self.manifest.get("deployable"))

    @property
    def synthetic(self) -> bool:
        return bool(self.manifest.get("training_data", {}).get("synthetic"))

    @property
    def min_confidence(self) -> float:
        return float(self.manifest.get("min_confidence", 0.6))

    def ood_stats(self):
        """The out-of-distribution statistics, or None for a bundle without them (format 1, or a model
        with no features output)."""
        ood = self.manifest.get("ood")
        if not ood or OOD_FILE not in self.models:
            return None
        return OODStats.from_bytes(self.models[OOD_FILE], ood["threshold"])

    @property
    def format_version(self) -> int:
        return int(self.manifest["format_version"])

    def known_answers(self) -> KnownAnswers | None:
        """The self-test's reference inputs and outputs, or None for a bundle without them (formats 1-2)."""
        if SELFTEST_FILE not in self.models:
            return None
        try:
            return KnownAnswers.from_bytes(self.models[SELFTEST_FILE])
        except (ValueError, OSError) as exc:
            raise BundleError(f"{_name(self.path, SELFTEST_FILE)}: unreadable ({exc})") from None


def _name(path: Path, member: str) -> str:
    return f"{path}:{member}" if path.is_file() else str(path / member)


def verify_files(path: Path, manifest: dict, contents: dict[str, bytes]) -> dict[str, tuple[bytes | None, str]]:
    """Each model and data file's bytes and 'ok', or None and the problem (missing, wrong size, checksum
    mismatch)."""
    results = {}
    checked = [*MODEL_FILES, *(name for name in DATA_FILES if name in manifest.get("files", {}))]
    for name in checked:
        entry = manifest.get("files", {}).get(name)
        where = _name(path, name)
        data = contents.get(name)
        if entry is None:
            results[name] = (None, f"{MANIFEST} lists no checksum for {name}")
        elif data is None:
            results[name] = (None, f"{where}: missing from the bundle")
        elif len(data) != entry.get("size"):
            results[name] = (None, f"{where}: size {len(data)} bytes, the manifest says {entry.get('size')} "
                                   "(truncated or replaced)")
        elif (actual := sha256_bytes(data)) != entry.get("sha256"):
            results[name] = (None, f"{where}: sha256 {actual} does not match the manifest's {entry.get('sha256')}")
        else:
            results[name] = (data, "ok")
    return results


def read_contents(path: Path) -> dict[str, bytes]:
    """The bundle's files by name, from a bundle folder or a .cxrb archive."""
    if path.is_file():
        return read_archive(path)
    if not path.is_dir():
        raise BundleError(f"bundle {str(path)!r} not found: give the path of a bundle folder or .cxrb file made "
                          f"by cxr-convert (or set {ENV_VAR})")
    return {name: (path / name).read_bytes() for name in BUNDLE_FILES if (path / name).is_file()}


def parse_manifest(path: Path, contents: dict[str, bytes]) -> dict:
    where = _name(path, MANIFEST)
    if MANIFEST not in contents:
        raise BundleError(f"{where}: missing; {path} is not a bundle made by cxr-convert")
    try:
        manifest = json.loads(contents[MANIFEST].decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{where}: not valid JSON ({exc})") from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise BundleError(f"{where}: format version {version!r}, this cxr-edge reads versions 1 to {FORMAT_VERSION}; "
                          "upgrade cxr-edge or convert the model with a matching cxr-convert")
    return manifest


def load_bundle(path: os.PathLike | str | None, allow_unverified: bool = False, allow_unsigned: bool = False,
                trust: TrustStore | None = None) -> Bundle:
    """Read and verify a bundle folder or .cxrb archive; `path` None means the CXR_EDGE_MODEL variable, `trust`
    None the trust folder ($CXR_EDGE_TRUSTED_KEYS or /etc/cxr-edge/trusted-keys)."""
    if path is None:
        path = os.environ.get(ENV_VAR)
        if not path:
            raise BundleError(f"no model bundle given: pass --model BUNDLE (a folder or .cxrb file) or set {ENV_VAR}; "
                              "make a bundle with `cxr-convert RUN_DIR --out BUNDLE_DIR` on the training machine")
    path = Path(path)
    contents = read_contents(path)
    manifest = parse_manifest(path, contents)
    checked = verify_files(path, manifest, contents)
    problems = [problem for _, problem in checked.values() if problem != "ok"]
    if problems:
        raise BundleError("; ".join(problems))
    origin = check_origin(contents[MANIFEST], contents.get(SIGNATURE_FILE), trust or TrustStore.load(),
                          allow_unsigned)
    if manifest["format_version"] >= 3 and SELFTEST_FILE not in manifest.get("files", {}):
        raise BundleError(f"{_name(path, MANIFEST)}: a format {manifest['format_version']} bundle must carry its "
                          f"self-test ({SELFTEST_FILE}) and this one lists none; convert the model again")
    if not manifest.get("deployable") and not allow_unverified:
        raise BundleError(f"{_name(path, MANIFEST)}: the bundle is marked not deployable (it did not "
                          "pass the float-vs-quantized parity gate; see parity.md); pass --allow-unverified to use it anyway")
    return Bundle(path, manifest, {name: data for name, (data, _) in checked.items()}, origin,
                  sha256_bytes(contents[MANIFEST]))
