"""The pictures of each received image, kept in the data folder for the screen: the thumbnail, written by the
classifying thread from the display image it decoded anyway, and the heatmap with its banner, written with the
heatmap capture (or, without one, on a clinician's request). Each is made once; nothing decodes an image again to
show it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from cxr_edge.atomic import write_atomic
from cxr_edge.node.state import private_folder
from cxr_edge.pictures.visuals import jpeg_bytes


def thumbnail_path(data: Path, image_id: int) -> Path:
    return Path(data) / "thumbnails" / f"{int(image_id)}.jpg"


def heatmap_path(data: Path, image_id: int) -> Path:
    return Path(data) / "heatmaps" / f"{int(image_id)}.png"


def keep_thumbnail(data: Path, image_id: int, display: np.ndarray) -> bytes:
    """The image's thumbnail JPEG (cxr_edge.pictures.visuals.jpeg_bytes), written atomically (0600)."""
    image = jpeg_bytes(display)
    _write(thumbnail_path(data, image_id), image)
    return image


def keep_heatmap(data: Path, image_id: int, overlay) -> None:
    """The heatmap over the image with its banner (a Pillow image: cxr_edge.pictures.heatmap.heat_overlay), PNG."""
    buffer = io.BytesIO()
    overlay.save(buffer, "PNG")
    _write(heatmap_path(data, image_id), buffer.getvalue())


def _write(path: Path, data: bytes) -> None:
    private_folder(path.parent)
    write_atomic(path, data, mode=0o600)
