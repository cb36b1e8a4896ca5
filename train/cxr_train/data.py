"""Training data: decode each image once into a uint8 cache at model resolution, then tf.data.

Decoding uses the shared image contract (cxr_edge.images), so training sees exactly the pixels the box
will see. Augmentation runs as Keras preprocessing layers inside the training input pipeline only, so
saved and converted models hold no augmentation at all.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf
import keras

from cxr_edge.images import ImageError, prepare
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


def augmenter(seed: int) -> keras.Sequential:
    """Small rotation, shift, zoom, brightness and contrast; no flips: X-rays have a side."""
    return keras.Sequential([
        keras.layers.RandomRotation(0.02, fill_mode="constant", seed=seed),
        keras.layers.RandomTranslation(0.05, 0.05, fill_mode="constant", seed=seed + 1),
        keras.layers.RandomZoom(0.1, fill_mode="constant", seed=seed + 2),
        keras.layers.RandomBrightness(0.1, value_range=(0, 255), seed=seed + 3),
        keras.layers.RandomContrast(0.1, seed=seed + 4),
    ], name="augment")


def make_dataset(pixels: np.ndarray, targets: np.ndarray, batch_size: int, training: bool,
                 seed: int, weights: dict[int, float] | None = None) -> tf.data.Dataset:
    """Batches of (float32 raw pixels 0..255, int targets[, per-image class weight]).

    Shuffled and augmented when training. Validation data gets the training class weights too, so that
    validation loss (which early stopping and checkpoints follow) measures the same thing as training loss:
    unweighted, it rewards predicting the majority class.
    """
    tensors = (pixels, targets)
    if weights is not None:
        tensors += (np.array([weights[int(t)] for t in targets], dtype=np.float32),)
    ds = tf.data.Dataset.from_tensor_slices(tensors)
    if training:
        ds = ds.shuffle(len(pixels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(_as_float, num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        augment = augmenter(seed)
        ds = ds.map(lambda x, *rest: (tf.clip_by_value(augment(x, training=True), 0.0, 255.0), *rest),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _as_float(x, *rest):
    return (tf.cast(x, tf.float32), *rest)


def class_weights(targets: np.ndarray, num_classes: int) -> dict[int, float]:
    """'Balanced' weights, n / (k * count): rare classes count as much as common ones."""
    counts = np.bincount(targets, minlength=num_classes)
    if (counts == 0).any():
        missing = [i for i in range(num_classes) if counts[i] == 0]
        raise DatasetError(f"class index(es) {missing} have no training images")
    return {i: float(len(targets) / (num_classes * c)) for i, c in enumerate(counts)}
