"""Initial weights for fine-tuning: the Caffe-converted ImageNet AlexNet, or a model file of our own.

`bvlc_alexnet.npy` is a pickled dict {layer: [weights, biases]} for conv1..fc8 in TensorFlow layout
(kernels (h, w, in/groups, out), dense (in, out)). conv1's RGB kernels are summed into one grayscale
channel; grouped layers (conv2, conv4, conv5) keep their two groups, as Keras' `groups=2` lays them out;
fc6 and fc7 load into the faithful head only; fc8 (the 1,000 ImageNet classes) is never loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np


BVLC_CONV = ("conv1", "conv2", "conv3", "conv4", "conv5")
BVLC_DENSE = ("fc6", "fc7")


class InitWeightsError(ValueError):
    """An --init-weights file that cannot be read or does not fit the model."""


def load_init_weights(model: keras.Model, path: os.PathLike | str) -> list[str]:
    """Load `path` into `model`; returns the names of the layers that were set."""
    path = Path(path)
    if not path.is_file():
        raise InitWeightsError(f"--init-weights file {str(path)!r} not found")
    if path.suffix == ".npy":
        return _load_bvlc(model, path)
    if path.name.endswith(".weights.h5"):
        try:
            model.load_weights(path)
        except Exception as exc:  # Keras raises several types for a file that does not fit
            raise InitWeightsError(f"cannot load {path} into {model.name}: {exc}") from None
        return [layer.name for layer in model.layers if layer.weights]
    if path.suffix == ".keras":
        try:
            source = keras.models.load_model(path, compile=False)
        except Exception as exc:
            raise InitWeightsError(f"cannot read {path} as a Keras model: {exc}") from None
        return copy_matching_layers(source, model, skip=("logits",))
    raise InitWeightsError(f"--init-weights {path.name!r}: expected bvlc_alexnet.npy, a .keras or a .weights.h5 file")


def copy_matching_layers(source: keras.Model, target: keras.Model, skip=("logits",)) -> list[str]:
    """Copy weights layer by layer, by name, for every weighted layer both models have (except `skip`)."""
    copied = []
    source_layers = {layer.name: layer for layer in source.layers}
    for layer in target.layers:
        src = source_layers.get(layer.name)
        if src is None or layer.name in skip or not layer.weights:
            continue
        _set(layer, [np.asarray(w) for w in src.get_weights()])
        copied.append(layer.name)
    return copied


def _set(layer, arrays) -> None:
    expected = [tuple(w.shape) for w in layer.get_weights()]
    got = [tuple(a.shape) for a in arrays]
    if expected != got:
        raise InitWeightsError(f"layer {layer.name!r}: the model expects weights of shape {expected}, "
                               f"the file has {got}")
    layer.set_weights(arrays)


def _load_bvlc(model: keras.Model, path: Path) -> list[str]:
    try:
        # The file format is a pickled dict, so pickle must be allowed: load only files you trust.
        data = np.load(path, allow_pickle=True, encoding="latin1").item()
    except Exception as exc:
        raise InitWeightsError(f"cannot read {path} as bvlc_alexnet.npy (a pickled dict of layer weights): {exc}") from None
    if not isinstance(data, dict) or not all(k in data for k in BVLC_CONV):
        raise InitWeightsError(f"{path}: expected a dict with keys conv1..conv5, fc6..fc8")
    names = {layer.name for layer in model.layers}
    loaded = []
    for name in BVLC_CONV:
        kernel, bias = (np.asarray(a, dtype=np.float32) for a in data[name])
        if name == "conv1" and kernel.shape[2] == 3:
            kernel = kernel.sum(axis=2, keepdims=True)  # RGB -> one grayscale channel
        _set(model.get_layer(name), [kernel, bias])
        loaded.append(name)
    if "flatten" in names:  # the faithful head: fc6, fc7 of 4096 load too
        for name in BVLC_DENSE:
            if name in names:
                _set(model.get_layer(name), [np.asarray(a, dtype=np.float32) for a in data[name]])
                loaded.append(name)
    return loaded
