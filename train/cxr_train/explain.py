"""Grad-CAM (Selvaraju et al., 2017) from a run's float Keras models, for review on the training side.

The map is the last convolution's activations weighted by the gradient of the class log-probability,
averaged over each channel; only positive evidence is kept. As on the box, the cascade's label picks what
is explained: stage 2's disease for an abnormal image, stage 1's "normal" for a normal one.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cxr_edge.atomic import write_atomic
from cxr_edge.inputs.images import ImageError, load_image, to_model_input
from cxr_edge.labels import LABELS
from cxr_edge.models.cascade import combine
from cxr_edge.pictures.heatmap import overlay

LAYER = "conv5"  # the last convolution: the finest map that still sees whole findings


def grad_cam(model: keras.Model, pixels: np.ndarray, class_index, layer: str = LAYER) -> np.ndarray:
    """(N, h, w) maps in 0..1 (each scaled by its own maximum) for (N, size, size, 1) uint8 inputs and one
    class index per image (or one for all)."""
    probe = keras.Model(model.inputs, [model.get_layer(layer).output, model.get_layer("logits").output])
    x = tf.convert_to_tensor(pixels, tf.float32)
    classes = np.broadcast_to(np.asarray(class_index), (len(pixels),))
    with tf.GradientTape() as tape:
        activations, logits = probe(x, training=False)
        # The class's log-probability, not its raw logit: softmax logits are only defined up to a shared
        # shift, and with two classes the raw logit's gradient mostly reflects that shift.
        score = tf.gather(tf.nn.log_softmax(logits), classes, axis=1, batch_dims=1)
    weights = tf.reduce_mean(tape.gradient(score, activations), axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1)).numpy()
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)


def explain(stage1: keras.Model, stage2: keras.Model, pixels: np.ndarray, threshold: float):
    """Cascade labels, (N, 4) probabilities and the Grad-CAM map of each image's label."""
    p_abnormal = stage1(tf.convert_to_tensor(pixels, tf.float32), training=False).numpy()[:, 1]
    labels, probs = combine(p_abnormal, stage2(tf.convert_to_tensor(pixels, tf.float32), training=False).numpy(),
                            threshold)
    maps = np.zeros((len(pixels),) + tuple(stage1.get_layer(LAYER).output.shape[1:3]), np.float32)
    normal = labels == 0
    if normal.any():
        maps[normal] = grad_cam(stage1, pixels[normal], 0)
    if (~normal).any():
        maps[~normal] = grad_cam(stage2, pixels[~normal], labels[~normal] - 1)
    return labels, probs, maps


def peak_position(cam: np.ndarray, width: int, height: int) -> tuple[float, float]:
    """The (x, y) pixel position, in an image of width x height, of the centre of the map's hottest cell."""
    row, col = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return (col + 0.5) * width / cam.shape[1], (row + 0.5) * height / cam.shape[0]


def pointing_game(cams: np.ndarray, boxes: list[tuple[int, int, int, int]], width: int, height: int,
                  tolerance: float = 0.05) -> tuple[float, float]:
    """Share of maps whose hottest point falls in the image's finding box (x0, y0, x1, y1), widened by
    `tolerance` x the image side (Zhang et al.'s pointing game allows 15 px at 224), and the share a point
    drawn uniformly at random would hit: the chance level, from the same widened boxes."""
    margin = tolerance * max(width, height)
    hits, chance = [], []
    for cam, (x0, y0, x1, y1) in zip(cams, boxes):
        x0, y0, x1, y1 = max(0, x0 - margin), max(0, y0 - margin), min(width, x1 + 1 + margin), min(height, y1 + 1 + margin)
        x, y = peak_position(cam, width, height)
        hits.append(x0 <= x <= x1 and y0 <= y <= y1)
        chance.append((x1 - x0) * (y1 - y0) / (width * height))
    return float(np.mean(hits)), float(np.mean(chance))


@dataclass
class Explained:
    image: Path
    overlay: Path | None = None  # None when the image could not be read
    label: str = ""
    probability: float = 0.0
    error: str = ""


def write_overlays(run: Path, images: list[Path], out_dir: Path, batch: int = 16) -> list[Explained]:
    """One Grad-CAM overlay PNG per image in `out_dir` (<stem>.gradcam.png), in the order given; an unreadable
    image gets an error and the others go on. Images are read a batch at a time, so a folder of any size fits."""
    from .fit import load_run

    config, stage1, stage2 = load_run(run)
    out_dir = Path(out_dir)
    _refuse_input_folders(out_dir, images)
    out_dir.mkdir(parents=True, exist_ok=True)
    names, results = _overlay_names(images), []
    for start in range(0, len(images), batch):
        done: dict[Path, Explained] = {}
        readable = []
        for path in images[start:start + batch]:
            try:
                readable.append((path, load_image(path)))
            except ImageError as exc:
                done[path] = Explained(path, error=exc.problem)
        if readable:
            pixels = np.stack([to_model_input(gray, config["image_size"]) for _, gray in readable])
            labels, probs, maps = explain(stage1, stage2, pixels, config["stage1_threshold"])
            for (path, gray), index, p, cam in zip(readable, labels, probs, maps):
                label, probability = LABELS[int(index)], float(p[index])
                buffer = io.BytesIO()
                overlay(gray, cam, [f"Grad-CAM {label} {probability:.2f}", "not a diagnosis"]).save(buffer, "PNG")
                write_atomic(out_dir / names[path], buffer.getvalue())
                done[path] = Explained(path, out_dir / names[path], label, probability)
        results += [done[path] for path in images[start:start + batch]]
    return results


def _overlay_names(images: list[Path]) -> dict[Path, str]:
    """<stem>.gradcam.png, numbered when two images share a stem, so that none overwrites another."""
    names, used = {}, set()
    for path in images:
        name, n = f"{path.stem}.gradcam.png", 1
        while name in used:
            n += 1
            name = f"{path.stem}-{n}.gradcam.png"
        used.add(name)
        names[path] = name
    return names


def _refuse_input_folders(out_dir: Path, images: list[Path]) -> None:
    """Overlays never go next to the images: the folder of the data is read, not written."""
    out = Path(os.path.realpath(out_dir))
    for folder in {Path(os.path.realpath(path)).parent for path in images}:
        if out == folder or folder in out.parents:
            raise ValueError(f"--out {out_dir} is inside the folder of the images ({folder}): choose another folder")
