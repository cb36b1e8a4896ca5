"""The deployable model bundle: one folder (or one .cxrb archive of it) holding manifest.json, stage1.tflite,
stage2.tflite, parity.json and parity.md. The box reads nothing else. Loading verifies the format version, every model file's size
and sha256, and `deployable`, and names the file and the problem when any check fails."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

FORMAT_VERSION = 2  # 2: optional out-of-distribution statistics (ood.npz); 1 is still read
MANIFEST = "manifest.json"
MODEL_FILES = ("stage1.tflite", "stage2.tflite")
OOD_FILE = "ood.npz"
BUNDLE_FILES = (MANIFEST, *MODEL_FILES, OOD_FILE, "parity.json", "parity.md")
ARCHIVE_SUFFIX = ".cxrb"
ENV_VAR = "CXR_EDGE_MODEL"


class BundleError(ValueError):
    """A bundle that must not be used; the message names the file and the problem."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict
    models: dict[str, bytes]  # file name -> verified bytes

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
        from .ood import OODStats

        return OODStats.from_bytes(self.models[OOD_FILE], ood["threshold"])


def _name(path: Path, member: str) -> str:
    return f"{path}:{member}" if path.is_file() else str(path / member)


def verify_files(path: Path, manifest: dict, contents: dict[str, bytes]) -> dict[str, tuple[bytes | None, str]]:
    """Each model file's bytes and 'ok', or None and the problem (missing, wrong size, checksum mismatch)."""
    results = {}
    checked = [*MODEL_FILES, *([OOD_FILE] if OOD_FILE in manifest.get("files", {}) else [])]
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
        from .archive import read_archive

        return read_archive(path)
    if not path.is_dir():
        raise BundleError(f"bundle {str(path)!r} not found: pass --model with a bundle folder or .cxrb file made "
                          f"by cxr-convert, or set {ENV_VAR}")
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


def load_bundle(path: os.PathLike | str | None, allow_unverified: bool = False) -> Bundle:
    """Read and verify a bundle folder or .cxrb archive; `path` None means the CXR_EDGE_MODEL variable."""
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
    if not manifest.get("deployable") and not allow_unverified:
        raise BundleError(f"{_name(path, MANIFEST)}: the bundle is marked not deployable (it failed the "
                          "float-vs-quantized parity gate; see parity.md); pass --allow-unverified to use it anyway")
    return Bundle(path, manifest, {name: data for name, (data, _) in checked.items()})
