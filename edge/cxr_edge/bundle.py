"""The deployable model bundle: one folder holding manifest.json, stage1.tflite, stage2.tflite, parity.json
and parity.md. The box reads nothing else. Loading verifies the format version, every model file's size
and sha256, and `deployable`, and names the file and the problem when any check fails."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODEL_FILES = ("stage1.tflite", "stage2.tflite")
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


def verify_files(path: Path, manifest: dict) -> dict[str, tuple[bytes | None, str]]:
    """Each listed model file's bytes and 'ok' or the problem (missing, wrong size, checksum mismatch)."""
    results = {}
    for name in MODEL_FILES:
        entry = manifest.get("files", {}).get(name)
        file = path / name
        if entry is None:
            results[name] = (None, f"{MANIFEST} lists no checksum for {name}")
            continue
        if not file.is_file():
            results[name] = (None, f"{file}: missing from the bundle")
            continue
        data = file.read_bytes()
        actual = sha256_bytes(data)
        if len(data) != entry.get("size"):
            results[name] = (None, f"{file}: size {len(data)} bytes, the manifest says {entry.get('size')} "
                                   "(truncated or replaced)")
        elif actual != entry.get("sha256"):
            results[name] = (None, f"{file}: sha256 {actual} does not match the manifest's {entry.get('sha256')}")
        else:
            results[name] = (data, "ok")
    return results


def read_manifest(path: Path) -> dict:
    file = path / MANIFEST
    if not path.is_dir():
        raise BundleError(f"bundle {str(path)!r} not found: pass --model BUNDLE_DIR (a folder made by cxr-convert) "
                          f"or set {ENV_VAR}")
    if not file.is_file():
        raise BundleError(f"{file}: missing; {path} is not a bundle made by cxr-convert")
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{file}: not valid JSON ({exc})") from None
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise BundleError(f"{file}: format version {version!r}, this cxr-edge reads versions 1 to {FORMAT_VERSION}; "
                          "upgrade cxr-edge or convert the model with a matching cxr-convert")
    return manifest


def load_bundle(path: os.PathLike | str | None, allow_unverified: bool = False) -> Bundle:
    """Read and verify a bundle folder; `path` None means the CXR_EDGE_MODEL environment variable."""
    if path is None:
        path = os.environ.get(ENV_VAR)
        if not path:
            raise BundleError(f"no model bundle given: pass --model BUNDLE_DIR or set {ENV_VAR}; make a bundle "
                              "with `cxr-convert RUN_DIR --out BUNDLE_DIR` on the training machine")
    path = Path(path)
    manifest = read_manifest(path)
    checked = verify_files(path, manifest)
    problems = [problem for _, problem in checked.values() if problem != "ok"]
    if problems:
        raise BundleError("; ".join(problems))
    if not manifest.get("deployable") and not allow_unverified:
        raise BundleError(f"{path / MANIFEST}: the bundle is marked not deployable (it failed the float-vs-quantized "
                          "parity gate; see parity.md); pass --allow-unverified to use it anyway")
    return Bundle(path, manifest, {name: data for name, (data, _) in checked.items()})
