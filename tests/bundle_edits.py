"""Edited copies of a bundle, for tests of what the box does with bundles it should doubt: older formats, and
files changed with the manifest's checksums made to match (as a careless or hostile converter would)."""

import json
import shutil
from pathlib import Path

from cxr_edge.atomic import write_atomic
from cxr_edge.bundle.files import MANIFEST, OOD_FILE, SELFTEST_FILE, sha256_bytes


def edited_copy(src: Path, dst: Path, manifest_edit=None, files: dict[str, bytes] | None = None) -> Path:
    """A copy of bundle `src` at `dst` with `files` replaced (their checksums updated in the manifest) and
    `manifest_edit(manifest)` applied to the manifest."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / MANIFEST).read_text())
    for name, data in (files or {}).items():
        (dst / name).write_bytes(data)
        manifest["files"][name] = {"size": len(data), "sha256": sha256_bytes(data)}
    if manifest_edit:
        manifest_edit(manifest)
    write_atomic(dst / MANIFEST, json.dumps(manifest))
    return dst


def older_format(src: Path, dst: Path, version: int) -> Path:
    """`src` as a bundle of format `version`: 2 has no self-test, 1 no out-of-distribution statistics either."""
    def downgrade(manifest):
        manifest["format_version"] = version
        dropped = [SELFTEST_FILE] + ([OOD_FILE] if version < 2 else [])
        for name in dropped:
            manifest["files"].pop(name, None)
            (dst / name).unlink(missing_ok=True)
        manifest.pop("selftest", None)
        if version < 2:
            manifest.pop("ood", None)

    return edited_copy(src, dst, downgrade)
