"""The pictures of the study page, made from the stored DICOM on first request and then kept in the data folder:
a thumbnail per image, and the heatmap when a clinician asks for one (an occlusion map: seconds on a Pi, so only on
request, one at a time, on interpreters of its own)."""

from __future__ import annotations

import io
from pathlib import Path

from cxr_edge.atomic import write_atomic
from cxr_edge.node.state import State, private_folder
from cxr_edge.pictures.visuals import jpeg_bytes
from cxr_edge.run.classify import decode
from cxr_edge.run.result import Result


def _cache(state: State, kind: str, image_id: int, suffix: str) -> Path:
    return Path(state.data) / kind / f"{int(image_id)}{suffix}"


def heatmap_path(state: State, image_id: int) -> Path:
    return _cache(state, "heatmaps", image_id, ".png")


def thumbnail(state: State, image: dict, config) -> bytes:
    path = _cache(state, "thumbnails", image["id"], ".jpg")
    if path.exists():
        return path.read_bytes()
    _, _, display, error, _ = decode(Path(state.data) / image["path"], 64, keep_gray=True)
    if display is None:
        from PIL import Image

        display = Image.new("L", (64, 64), 40)
    data = jpeg_bytes(display)
    private_folder(path.parent)
    write_atomic(path, data, mode=0o600)
    return data


def make_heatmap(context, image: dict) -> bool:
    """The heatmap with its banner, kept as PNG: computed once, whoever asks first. False when another is being
    made (the request does not wait: waiting threads would leave none for the other pages)."""
    path = heatmap_path(context.state, image["id"])
    if not context._heat_lock.acquire(blocking=False):
        return path.exists()
    try:
        if not path.exists():
            _draw_heatmap(context, image, path)
        return True
    finally:
        context._heat_lock.release()


def _draw_heatmap(context, image: dict, path: Path) -> None:
    from cxr_edge.pictures.heatmap import heat_overlay, label_heat

    classifier = context.heat_classifier()
    pixels, _, display, _, _ = decode(Path(context.state.data) / image["path"], classifier.size, keep_gray=True)
    if pixels is None:
        return
    result = Result.from_record(image["path"], image)
    buffer = io.BytesIO()
    heat_overlay(result, display, label_heat(classifier, result, pixels)).save(buffer, "PNG")
    private_folder(path.parent)
    write_atomic(path, buffer.getvalue(), mode=0o600)
