"""Regenerate cxr_edge's interpreter probe (edge/cxr_edge/models/probe/): a 3 kB int8 model (one 3x3 convolution,
average pooling, a dense softmax; uint8 in and out) and its known answers on 16 random inputs, computed with
this machine's interpreter. The smallest model found that shows LiteRT 2.1-2.3's aarch64 int8 fault (docs/box.md,
"Verified interpreters"): `cxr-edge --version` runs it, and scripts/litert_repro.py is the upstream reproduction.

    python scripts/make_probe.py    # needs the train extra (TensorFlow); rewrites model.tflite and known.npz
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cxr_edge.models.probe import INPUT_SHAPE, KNOWN, MODEL, run_probe_model

OUT = Path(__file__).resolve().parents[1] / "edge" / "cxr_edge" / "models" / "probe"


def build_model() -> bytes:
    keras.utils.set_random_seed(0)
    inputs = keras.Input(INPUT_SHAPE[1:])
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    calibration = np.random.default_rng(0).integers(0, 256, (32, *INPUT_SHAPE[1:])).astype(np.float32)
    with tempfile.TemporaryDirectory() as saved:
        model.export(saved, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[np.newaxis]] for image in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.uint8
        return converter.convert()


def main() -> None:
    OUT.mkdir(exist_ok=True)
    (OUT / MODEL).write_bytes(build_model())
    inputs = np.random.default_rng(1).integers(0, 256, INPUT_SHAPE, dtype=np.uint8)
    outputs, _ = run_probe_model((OUT / MODEL).read_bytes(), inputs, "default")
    np.savez(OUT / KNOWN, inputs=inputs, outputs=outputs)
    print(f"wrote {OUT / MODEL} and {OUT / KNOWN}")


if __name__ == "__main__":
    main()
