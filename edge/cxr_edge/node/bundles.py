"""Which bundle the node runs, and promotion and rollback. The configuration's `model` and `site` are the node's
first bundle; a promotion (`cxr-edge candidate promote`) copies the candidate and its new site file into the
data folder and points `data/active.json` at them, keeping what it replaces as `previous`; `rollback` points back.
Each change is one atomic rename of that small file, so a power cut at any moment leaves one bundle active with its
own site file, never none or a mix. The node reads the pointer at start: restart it after a change."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

from cxr_edge.atomic import sync_folder, write_atomic
from cxr_edge.node.config import NodeConfig

ACTIVE = "active.json"
BUNDLES = "bundles"  # promoted bundles and their site files, by manifest sha256


class PromotionError(RuntimeError):
    """A promotion or rollback that cannot be done: the message says why and what to do."""


def pointer(config: NodeConfig) -> dict | None:
    """The data folder's active.json, or None while the configuration's bundle is the active one."""
    path = config.data / ACTIVE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return {**record, "model": Path(record["model"]), "site": Path(record["site"]) if record["site"] else None}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PromotionError(f"{path} cannot be read ({exc}): restore it from a backup, or remove it to run the "
                             "configuration's bundle") from None


def effective(config: NodeConfig) -> NodeConfig:
    """The configuration with the active bundle and site file in place of the first ones after a promotion."""
    active = pointer(config)
    return config if active is None else replace(config, model=active["model"], site=active["site"])


def promote(config: NodeConfig, candidate: Path, manifest_sha256: str, site_record: dict | None, by: str,
            verdict: str, override: str = "") -> dict:
    """Make `candidate` the active bundle with `site_record` (a site file's content; None: uncalibrated). Copies
    first (the bundle, then its site file, each durable), then the pointer: the one step that changes what runs."""
    current = effective(config)
    folder = config.data / BUNDLES
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    model = folder / f"{manifest_sha256[:16]}{candidate.suffix if candidate.is_file() else ''}"
    if not model.exists():
        copy_durably(candidate, model)
    site = None
    if site_record is not None:
        site = folder / f"{manifest_sha256[:16]}.site.json"
        write_atomic(site, json.dumps(site_record, indent=2) + "\n", mode=0o600)
    record = {"model": str(model), "site": str(site) if site else None, "promoted": time.time(), "by": by,
              "verdict": verdict, "override": override,
              "previous": {"model": str(current.model), "site": str(current.site) if current.site else None}}
    _point(config, record)
    return record


def rollback(config: NodeConfig, by: str) -> dict:
    """Point back at the bundle and site file the last promotion replaced (they were kept)."""
    active = pointer(config)
    if active is None or not active.get("previous"):
        raise PromotionError("nothing to roll back: no bundle has been promoted on this node")
    previous = active["previous"]
    for key in ("model", "site"):
        if previous[key] and not Path(previous[key]).exists():
            raise PromotionError(f"the previous {key} {previous[key]} is gone: nothing was changed")
    record = {"model": previous["model"], "site": previous["site"], "promoted": time.time(), "by": by,
              "verdict": "rollback", "override": "",
              "previous": {"model": str(active["model"]), "site": str(active["site"]) if active["site"] else None}}
    _point(config, record)
    return record


def _point(config: NodeConfig, record: dict) -> None:
    write_atomic(config.data / ACTIVE, json.dumps(record, indent=2) + "\n", mode=0o600)
    sync_folder(config.data)


def copy_durably(source: Path, target: Path) -> None:
    """A bundle (folder or .cxrb file) copied whole under a temporary name, synced, then renamed into place."""
    partial = target.with_name(target.name + ".partial")
    if partial.is_dir():
        shutil.rmtree(partial)
    partial.unlink(missing_ok=True)
    if source.is_dir():
        shutil.copytree(source, partial)
        files = [p for p in partial.rglob("*") if p.is_file()]
    else:
        shutil.copyfile(source, partial)
        files = [partial]
    for path in files:
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
    if source.is_dir():
        sync_folder(partial)
    os.replace(partial, target)
    sync_folder(target.parent)
