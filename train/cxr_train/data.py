"""Training data: decode each image once into a uint8 cache at model resolution, then tf.data.

Decoding uses the shared image contract (cxr_edge.inputs.images), so training sees exactly the pixels the box
will see. Augmentation runs in the training input pipeline only (TensorFlow ops in tf.data, whichever
Keras backend trains), so saved and converted models hold no augmentation at all.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf

from cxr_edge.inputs.images import ImageError, prepare
from cxr_edge.labels import LABELS

from .dataset import DatasetError, Record


def load_pixels(data_dir: os.PathLike | str, records: list[Record], size: int) -> np.ndarray:
    """(N, size, size, 1) uint8 for the records, decoded in parallel; an unreadable image is an error."""
    data_dir = Path(data_dir)
    out = np.empty((len(records), size, size, 1), dtype=np.uint8)

    def fill(i: int) -> None:
        out[i] = prepare(data_dir / records[i].path, size)

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:
        try:
            list(pool.map(fill, range(len(records))))
        except ImageError as exc:
            raise DatasetError(f"{exc} (listed in split.csv; fix or remove it, or pass --data DIR "
                               "if the images moved)") from None
    return out


def label_indices(records: list[Record]) -> np.ndarray:
    return np.array([LABELS.index(r.label) for r in records], dtype=np.int64)


# Augmentation ranges: small rotation, shift, zoom, brightness and contrast; no flips (X-rays have a side).
ROTATION = 0.02 * 2 * np.pi  # radians either way
SHIFT = 0.05  # of the side, either way
ZOOM = 0.1  # scale 0.9..1.1
BRIGHTNESS = 0.1 * 255  # added, either way
CONTRAST = 0.1  # factor 0.9..1.1 about each image's mean


def make_dataset(pixels: np.ndarray, targets: np.ndarray, batch_size: int, training: bool,
                 seed: int, weights: dict[int, float] | None = None, whole_batches: bool = False,
                 first_pass: int = 0) -> tf.data.Dataset:
    """Batches of (float32 raw pixels 0..255, int targets[, per-image class weight]).

    Training data is an endless stream (fit with steps_per_epoch): pass k over the images is shuffled with
    the seed (seed, k), and each image's augmentation is drawn from (seed, its place in the stream), with
    stateless random ops. So every iterator over it yields the same batches whatever Keras's epoch iterator
    peeks at or prefetches, and a run split over several processes sees the batches of a one-process run.
    `first_pass` starts the stream at a later pass (a second fit() call after frozen-trunk epochs).

    Validation data gets the training class weights too, so that validation loss (which early stopping and
    checkpoints follow) measures the same thing as training loss: unweighted, it rewards predicting the
    majority class. `whole_batches` drops its last, smaller batch: Keras's data-parallel input sharding needs
    every batch to split evenly over the devices.
    """
    tensors = (pixels, targets)
    if weights is not None:
        tensors += (np.array([weights[int(t)] for t in targets], dtype=np.float32),)
    if not training:
        ds = tf.data.Dataset.from_tensor_slices(tensors).batch(batch_size, drop_remainder=whole_batches)
        return ds.map(_as_float, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    columns, n = tuple(tf.constant(t) for t in tensors), len(pixels)

    def one_pass(k):
        order = tf.argsort(tf.random.stateless_uniform([n], seed=tf.stack([_seed(seed), k])))
        return tf.data.Dataset.from_tensor_slices(order).enumerate(start=k * n).map(
            lambda place, i: (*(tf.gather(c, i) for c in columns), _draw(seed, place)))

    ds = tf.data.Dataset.counter(first_pass).flat_map(one_pass).batch(batch_size, drop_remainder=True)
    return ds.map(_augment, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _seed(seed: int) -> tf.Tensor:
    return tf.constant(seed, tf.int64)


def _draw(seed: int, place) -> tf.Tensor:
    """One image's augmentation: angle, x and y shift, zoom, brightness, contrast; each uniform in -1..1."""
    key = tf.stack([_seed(seed) + 1, place])
    return tf.random.stateless_uniform([6], seed=key, minval=-1.0, maxval=1.0)


def _augment(x, *rest):
    """Applies the drawn rotation, shift and zoom as one bilinear affine warp, then brightness and contrast."""
    *rest, r = rest
    x = tf.cast(x, tf.float32)
    height, width = tf.cast(tf.shape(x)[1], tf.float32), tf.cast(tf.shape(x)[2], tf.float32)
    angle, scale = r[:, 0] * ROTATION, 1.0 + r[:, 3] * ZOOM
    cos, sin = scale * tf.cos(angle), scale * tf.sin(angle)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    # Output pixel (x, y) reads input pixel (cos*x - sin*y + a2, sin*x + cos*y + b2): about the centre, shifted.
    a2 = cx - cos * cx + sin * cy - r[:, 1] * SHIFT * width
    b2 = cy - sin * cx - cos * cy - r[:, 2] * SHIFT * height
    zeros = tf.zeros_like(cos)
    transforms = tf.stack([cos, -sin, a2, sin, cos, b2, zeros, zeros], axis=1)
    x = tf.raw_ops.ImageProjectiveTransformV3(images=x, transforms=transforms, output_shape=tf.shape(x)[1:3],
                                              fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
    x = x + (r[:, 4] * BRIGHTNESS)[:, None, None, None]
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean) * (1.0 + r[:, 5] * CONTRAST)[:, None, None, None] + mean
    return (tf.clip_by_value(x, 0.0, 255.0), *rest)


def _as_float(x, *rest):
    return (tf.cast(x, tf.float32), *rest)


def class_weights(targets: np.ndarray, num_classes: int) -> dict[int, float]:
    """'Balanced' weights, n / (k * count): rare classes count as much as common ones."""
    counts = np.bincount(targets, minlength=num_classes)
    if (counts == 0).any():
        missing = [i for i in range(num_classes) if counts[i] == 0]
        raise DatasetError(f"class index(es) {missing} have no training images")
    return {i: float(len(targets) / (num_classes * c)) for i, c in enumerate(counts)}
