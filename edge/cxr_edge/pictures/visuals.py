"""Pictures of each image for the people at the box: a display copy (for heatmaps), and the HTML report's
thumbnail and heatmap, kept as small JPEG files beside the report while the run goes on.

Memory stays bounded whatever the folder's size: a decode thread shrinks each radiograph to the display size at
once, and the report's pictures go to disk as each image is classified, not into memory. Kept on disk beside
the journal, they survive an interrupted run, so a resumed run's report shows every image.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from cxr_edge.atomic import write_atomic

DISPLAY_SIDE = 1024  # px, the long side of heatmap files and of what the decode threads keep for drawing
THUMB_SIDE = 320  # px, the long side of the report's pictures: a few tens of kB as JPEG
JPEG_QUALITY = 80


def display_image(gray: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    """`gray` shrunk to at most `side` px on its long side (a copy either way: the full image can be freed)."""
    image = Image.fromarray(gray)
    if max(image.size) > side:
        image.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.array(image)


def jpeg_bytes(image: Image.Image | np.ndarray, side: int = THUMB_SIDE) -> bytes:
    image = Image.fromarray(image) if isinstance(image, np.ndarray) else image.copy()
    image.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


def visuals_dir(report: os.PathLike | str) -> Path:
    """Where a report's pictures wait for the report: REPORT.images beside it (as REPORT.journal is)."""
    report = Path(report)
    return report.with_name(report.name + ".images")


class Visuals:
    """The thumbnail and heatmap JPEGs of each classified image, by its path relative to the folder."""

    def __init__(self, folder: Path, heatmaps: bool = False):
        self.folder = Path(folder)
        self.heatmaps = heatmaps
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, rel_path: str, kind: str) -> Path:
        digest = hashlib.sha256(rel_path.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        return self.folder / f"{digest}.{kind}.jpg"

    def add(self, rel_path: str, display: np.ndarray, heat_image: Image.Image | None = None) -> None:
        write_atomic(self._path(rel_path, "thumb"), jpeg_bytes(display))
        if heat_image is not None:
            write_atomic(self._path(rel_path, "heat"), jpeg_bytes(heat_image))

    def get(self, rel_path: str, kind: str) -> bytes | None:
        """The stored JPEG (kind "thumb" or "heat"), or None when there is none."""
        path = self._path(rel_path, kind)
        return path.read_bytes() if path.is_file() else None

    def clear(self) -> None:
        """Forget every picture (those of a run the journal does not continue)."""
        self.remove()
        self.folder.mkdir(parents=True)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
