"""The data set reader: labeled images of a data folder, and the train/val/test split.

Layouts: the COVID-19 Radiography Database (`<Class>/images/*.png`, with `masks/` and metadata files
ignored) or plain `<Class>/*.<ext>`. The split is stratified by class, deterministic for a seed, and keeps
exact duplicates (same content hash) in one split, so the test split never holds an image trained on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cxr_edge.atomic import write_atomic
from cxr_edge.csv_cells import plain, safe
from cxr_edge.inputs.images import IMAGE_SUFFIXES, ImageError, load_image
from cxr_edge.labels import LABELS, UnknownLabelError, label_from_folder

SPLITS = ("train", "val", "test")
SPLIT_COLUMNS = ("path", "label", "split", "sha256")


class DatasetError(ValueError):
    """A data folder or split file that cannot be used; the message says what is missing."""


@dataclass(frozen=True)
class Record:
    path: str  # relative to the data folder, with '/' separators
    label: str
    sha256: str
    split: str = ""


@dataclass
class Scan:
    records: list[Record]
    unreadable: list[ImageError] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {label: sum(r.label == label for r in self.records) for label in LABELS}


def _image_files(class_dir: Path) -> list[Path]:
    images_dir = class_dir / "images"
    folder = images_dir if images_dir.is_dir() else class_dir
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def _class_dirs(data_dir: Path) -> list[tuple[Path, str]]:
    if not data_dir.is_dir():
        raise DatasetError(f"data folder {str(data_dir)!r} does not exist or is not a folder")
    dirs = []
    for sub in sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            dirs.append((sub, label_from_folder(sub.name)))
        except UnknownLabelError as exc:
            raise DatasetError(f"in {data_dir}: {exc}") from None
    if not dirs:
        raise DatasetError(f"data folder {str(data_dir)!r} holds no class folders: expected "
                           "Normal/, Lung_Opacity/, Viral Pneumonia/ and COVID/ (each with images/)")
    return dirs


def _check(path: Path) -> str:
    """sha256 of the file's bytes, after checking that the image contract can decode it."""
    load_image(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def scan(data_dir: os.PathLike | str, labels: tuple[str, ...] = LABELS, workers: int | None = None) -> Scan:
    """Find and check every labeled image; unreadable ones are listed with their reason, not dropped silently."""
    data_dir = Path(data_dir)
    found = [(p, label) for class_dir, label in _class_dirs(data_dir) for p in _image_files(class_dir)]
    missing = [lb for lb in labels if not any(label == lb for _, label in found)]
    if missing:
        raise DatasetError(f"no images for class(es) {', '.join(missing)} in {data_dir}: each needs a folder "
                           "(e.g. 'Viral Pneumonia/images/') with PNG, JPEG, BMP or TIFF files")
    records, unreadable = [], []
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) + 2)) as pool:
        futures = [(p, label, pool.submit(_check, p)) for p, label in found if label in labels]
        for p, label, fut in futures:
            try:
                records.append(Record(p.relative_to(data_dir).as_posix(), label, fut.result()))
            except ImageError as exc:
                unreadable.append(exc)
    return Scan(records, unreadable)


def make_split(records: list[Record], seed: int = 0, val_fraction: float = 0.15,
               test_fraction: float = 0.15) -> list[Record]:
    """Assign each record to train/val/test, stratified by label, deterministic for `seed`.

    Exact duplicates are grouped by content hash and the whole group goes to one split, placed by the
    label of its first member (sorted by path); every class gets at least one group in each split.
    """
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DatasetError(f"split fractions val={val_fraction} test={test_fraction} must be in (0, 1) and sum below 1")
    groups: dict[str, list[Record]] = {}
    for rec in sorted(records, key=lambda r: r.path):
        groups.setdefault(rec.sha256, []).append(rec)
    by_label: dict[str, list[str]] = {}
    for digest, members in groups.items():
        by_label.setdefault(members[0].label, []).append(digest)
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for label in sorted(by_label):
        digests = sorted(by_label[label])
        n = len(digests)
        if n < 3:
            raise DatasetError(f"class {label!r} has {n} distinct image(s): at least 3 are needed for a "
                               "train/val/test split (add images, or check for duplicates)")
        n_val = max(1, round(n * val_fraction))
        n_test = max(1, round(n * test_fraction))
        if n - n_val - n_test < 1:
            raise DatasetError(f"class {label!r} has too few images ({n}) for the split fractions")
        order = rng.permutation(n)
        for rank, i in enumerate(order):
            assignment[digests[i]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return [Record(r.path, r.label, r.sha256, assignment[r.sha256]) for r in sorted(records, key=lambda r: r.path)]


def write_split(records: list[Record], path: os.PathLike | str) -> None:
    """Write split.csv (path,label,split,sha256) atomically."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(SPLIT_COLUMNS)
    writer.writerows((safe(r.path), r.label, r.split, r.sha256) for r in records)
    write_atomic(path, text.getvalue())


def read_split(path: os.PathLike | str) -> list[Record]:
    """Read a split.csv written by write_split, checking its columns, labels and split names."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"split file {str(path)!r} not found")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != SPLIT_COLUMNS:
            raise DatasetError(f"{path}: expected columns {','.join(SPLIT_COLUMNS)}, got {reader.fieldnames}")
        records = [Record(plain(row["path"]), row["label"], row["sha256"], row["split"]) for row in reader]
    for rec in records:
        if rec.label not in LABELS or rec.split not in SPLITS:
            raise DatasetError(f"{path}: row for {rec.path!r} has label {rec.label!r} / split {rec.split!r}; "
                               f"labels are {', '.join(LABELS)} and splits {', '.join(SPLITS)}")
    if not records:
        raise DatasetError(f"{path} lists no images")
    return records


def select(records: list[Record], split: str) -> list[Record]:
    """The records of one split ('all' for every record)."""
    return list(records) if split == "all" else [r for r in records if r.split == split]
