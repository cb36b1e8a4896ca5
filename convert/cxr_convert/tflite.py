"""Keras model -> SavedModel -> TFLite, in one of four quantization modes.

int8 is full-integer (TFLITE_BUILTINS_INT8) with a uint8 input that takes the image contract's raw
grayscale pixels, so the box does no float work; a representative data set calibrates the ranges.
"""

from __future__ import annotations

import csv
import tempfile
from typing import Iterator

import keras
import numpy as np
import tensorflow as tf

QUANTIZATIONS = ("int8", "float16", "dynamic", "float32")


def convert(model: keras.Model, quantization: str, calibration: np.ndarray | None = None) -> bytes:
    """The .tflite bytes of `model`; `calibration` (N, size, size, 1) uint8 is required for int8."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}: choose one of {', '.join(QUANTIZATIONS)}")
    with tempfile.TemporaryDirectory() as saved_model:
        model.export(saved_model, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        _configure(converter, quantization, calibration)
        return converter.convert()


def _configure(converter: tf.lite.TFLiteConverter, quantization: str, calibration) -> None:
    if quantization == "float32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        if calibration is None or len(calibration) == 0:
            raise ValueError("int8 quantization needs calibration images")
        converter.representative_dataset = lambda: _representative(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8


def _representative(calibration: np.ndarray) -> Iterator[list[np.ndarray]]:
    for image in calibration:
        yield [image[np.newaxis].astype(np.float32)]


def debug_quantization(model: keras.Model, calibration: np.ndarray) -> list[dict]:
    """Per-layer quantization error (TensorFlow's quantization debugger), worst layers first."""
    with tempfile.TemporaryDirectory() as saved_model:
        model.export(saved_model, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        _configure(converter, "int8", calibration)
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: _representative(calibration))
        debugger.run()
        with tempfile.NamedTemporaryFile("w+", suffix=".csv") as fh:
            debugger.layer_statistics_dump(fh)
            fh.seek(0)
            rows = list(csv.DictReader(fh))
    for row in rows:
        for key in ("mean_squared_error", "num_elements", "stddev", "mean_error", "max_abs_error"):
            if key in row and row[key] not in ("", None):
                row[key] = float(row[key])
    return sorted(rows, key=lambda r: -float(r.get("mean_squared_error") or 0))
