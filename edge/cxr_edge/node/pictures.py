"""The pictures of each received image, kept in the data folder for the screen: the thumbnail, written by the
classifying thread from the display image it decoded anyway; the heatmap with its banner and the heat alone (the
viewer's layer), written with the heatmap capture (or, without one, on a clinician's request); and the image at
full resolution and bit depth for the viewer, made on the first request. Each is made once."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from cxr_edge.atomic import write_atomic
from cxr_edge.node.state import private_folder
from cxr_edge.pictures.visuals import jpeg_bytes


def thumbnail_path(data: Path, image_id: int) -> Path:
    return Path(data) / "thumbnails" / f"{int(image_id)}.jpg"


def heatmap_path(data: Path, image_id: int) -> Path:
    return Path(data) / "heatmaps" / f"{int(image_id)}.png"


def heat_layer_path(data: Path, image_id: int) -> Path:
    return Path(data) / "heatmaps" / f"{int(image_id)}.layer.png"


def full_paths(data: Path, image_id: int) -> tuple[Path, Path]:
    """The full-resolution values (raw, little-endian) and what they are (JSON)."""
    folder = Path(data) / "full"
    return folder / f"{int(image_id)}.raw", folder / f"{int(image_id)}.json"


def keep_full(data: Path, image_id: int, image) -> dict:
    """The viewer's copy of an image (cxr_edge.inputs.dicom.FullImage): its values as the narrowest typed array the
    browser takes (Uint16, Int16, else Float32) and its description, both written atomically; returns the
    description: size, type, the header's windows, whether to invert, and the range and its 1st..99th percentile
    (the viewer's presets)."""
    values = image.values
    low, high = float(values.min()), float(values.max())
    if np.issubdtype(values.dtype, np.integer) and low >= 0 and high <= 65535:
        typed, kind = values.astype("<u2"), "Uint16"
    elif np.issubdtype(values.dtype, np.integer) and low >= -32768 and high <= 32767:
        typed, kind = values.astype("<i2"), "Int16"
    else:
        typed, kind = values.astype("<f4"), "Float32"
    sample = typed[:: max(1, typed.shape[0] // 512), :: max(1, typed.shape[1] // 512)]  # percentiles on a sample
    p1, p99 = (float(v) for v in np.percentile(sample, (1, 99)))
    meta = {"rows": int(typed.shape[0]), "columns": int(typed.shape[1]), "type": kind,
            "windows": [list(w) for w in image.windows], "invert": bool(image.invert), "min": low, "max": high,
            "p1": p1, "p99": p99}
    raw, described = full_paths(data, image_id)
    _write(raw, np.ascontiguousarray(typed).tobytes())
    _write(described, json.dumps(meta).encode())
    return meta


def keep_heat(data: Path, image_id: int, result, display: np.ndarray, heat: np.ndarray):
    """An image's heatmap kept for the screen, both ways it is shown: over the image with its banner
    (cxr_edge.pictures.heatmap.heat_overlay) and alone, with alpha, at the display image's size (heat_layer, the
    viewer's layer). Returns the first, a Pillow image (the heatmap capture's picture)."""
    from cxr_edge.pictures.heatmap import heat_layer, heat_overlay

    overlay = heat_overlay(result, display, heat)
    _write_png(heatmap_path(data, image_id), overlay)
    _write_png(heat_layer_path(data, image_id), heat_layer(heat, display.shape[1], display.shape[0]))
    return overlay


def keep_thumbnail(data: Path, image_id: int, display: np.ndarray) -> bytes:
    """The image's thumbnail JPEG (cxr_edge.pictures.visuals.jpeg_bytes), written atomically (0600)."""
    image = jpeg_bytes(display)
    _write(thumbnail_path(data, image_id), image)
    return image


def _write_png(path: Path, image) -> None:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    _write(path, buffer.getvalue())


def _write(path: Path, data: bytes) -> None:
    private_folder(path.parent)
    write_atomic(path, data, mode=0o600)
