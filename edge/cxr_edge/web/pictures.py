"""The pictures of the study page, kept in the data folder (cxr_edge.node.pictures): the thumbnail the classifying
thread wrote, and the heatmap it wrote with the heatmap capture. Only what is not there yet is made here: the
thumbnail of an image classified before thumbnails were kept, and the heatmap a clinician asks for where no capture
is sent (an occlusion map: seconds on a Pi, so only on request, one at a time, on interpreters of its own)."""

from __future__ import annotations

import threading
from pathlib import Path

from cxr_edge.node.pictures import (
    full_paths,
    heat_layer_path,
    heatmap_path,
    keep_full,
    keep_heat,
    keep_thumbnail,
    thumbnail_path,
)
from cxr_edge.node.state import State
from cxr_edge.run.classify import decode
from cxr_edge.run.result import Result

__all__ = ["full_image", "heat_layer_path", "heatmap_path", "make_heatmap", "thumbnail"]
_full_locks: dict[int, threading.Lock] = {}
_full_guard = threading.Lock()


def full_image(state: State, image: dict) -> tuple[Path, Path]:
    """The viewer's full-resolution copy of a received image (cxr_edge.node.pictures.keep_full): made on the first
    request, once (a second request for the same image waits for the first), then read from the data folder.
    ValueError when the file cannot be shown at full resolution."""
    from cxr_edge.inputs.dicom import read_full

    raw, described = full_paths(state.data, image["id"])
    with _full_guard:
        lock = _full_locks.setdefault(int(image["id"]), threading.Lock())
    with lock:
        if not described.exists():
            keep_full(state.data, image["id"], read_full(Path(state.data) / image["path"]))
    return raw, described


def thumbnail(state: State, image: dict, config) -> bytes:
    path = thumbnail_path(state.data, image["id"])
    if path.exists():
        return path.read_bytes()
    display = decode(Path(state.data) / image["path"], 64, keep_gray=True).display
    if display is None:
        from PIL import Image

        display = Image.new("L", (64, 64), 40)
    return keep_thumbnail(state.data, image["id"], display)


def make_heatmap(context, image: dict) -> bool:
    """The heatmap with its banner, kept as PNG: computed once, whoever asks first. False when another is being
    made (the request does not wait: waiting threads would leave none for the other pages)."""
    path = heatmap_path(context.state.data, image["id"])
    if not context._heat_lock.acquire(blocking=False):
        return path.exists()
    try:
        if not path.exists():
            from cxr_edge.language import using

            with using(context.config.web.language):  # kept for every reader: in the box's language, as the worker's
                _draw_heatmap(context, image)
        return True
    finally:
        context._heat_lock.release()


def _draw_heatmap(context, image: dict) -> None:
    from cxr_edge.pictures.heatmap import label_heat

    classifier = context.heat_classifier()
    decoded = decode(Path(context.state.data) / image["path"], classifier.size, keep_gray=True)
    if decoded.pixels is None:
        return
    result = Result.from_record(image["path"], image)
    keep_heat(context.state.data, image["id"], result, decoded.display, label_heat(classifier, result, decoded.pixels))
