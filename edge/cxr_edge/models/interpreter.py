"""The TFLite interpreter the box runs, and a small model wrapper around it.

Interpreters are tried in a fixed order: LiteRT (`ai_edge_litert`, fastest here and works with numpy 2),
then `tflite_runtime` (for boxes with no LiteRT wheel), then `tensorflow.lite` (a training machine).
The last is imported only when nothing else is installed, so the box never loads TensorFlow.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

import numpy as np

# (module to import, attribute path to the Interpreter class, distribution that carries the version)
_BACKENDS = (
    ("ai_edge_litert.interpreter", "Interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "Interpreter", "tflite-runtime"),
    ("tensorflow", "lite.Interpreter", "tensorflow"),
)


# The kernel sets an interpreter offers, in the order the box tries them: "default" lets the interpreter
# apply its default delegate (XNNPACK, where it supports the ops), "builtin" keeps TFLite's own kernels.
KERNELS = ("default", "builtin")


class NoInterpreterError(RuntimeError):
    """No TFLite interpreter is installed."""


@dataclass(frozen=True)
class Backend:
    name: str  # the distribution: ai-edge-litert, tflite-runtime or tensorflow
    version: str
    interpreter_class: type

    def resolver(self, kernels: str):
        """The interpreter's op resolver argument for a kernel set (each interpreter defines its own enum)."""
        if kernels not in KERNELS:
            raise ValueError(f"unknown kernel set {kernels!r}: choose one of {', '.join(KERNELS)}")
        resolvers = sys.modules[self.interpreter_class.__module__].OpResolverType
        return resolvers.AUTO if kernels == "default" else resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


@lru_cache(maxsize=1)
def backend() -> Backend:
    """The first interpreter that imports, in the order above."""
    for module_name, attr_path, dist in _BACKENDS:
        try:
            obj = importlib.import_module(module_name)
        except ImportError:
            continue
        for attr in attr_path.split("."):
            obj = getattr(obj, attr)
        try:
            dist_version = version(dist)
        except PackageNotFoundError:
            dist_version = "unknown"
        return Backend(dist, dist_version, obj)
    raise NoInterpreterError(
        "no TFLite interpreter is installed: run `pip install ai-edge-litert` "
        "(or, where LiteRT has no wheel, `pip install 'cxr-edge[tflite]'`)"
    )


def default_threads() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class TensorSpec:
    index: int
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float  # 0.0 when the tensor is not quantized
    zero_point: int


def _spec(detail: dict) -> TensorSpec:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorSpec(detail["index"], tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]),
                      float(scale), int(zero_point))


class TFLiteModel:
    """One .tflite model: uint8 pixels in, float probabilities out, whatever its quantization.

    Quantization parameters come from the interpreter's own tensor details; nothing is hard-coded.
    """

    def __init__(self, model_content: bytes, threads: int | None = None, kernels: str = "default"):
        b = backend()
        self.kernels = kernels
        with native_log_filtered():
            self._interpreter = b.interpreter_class(model_content=model_content,
                                                    num_threads=threads or default_threads(),
                                                    experimental_op_resolver_type=b.resolver(kernels))
            self._interpreter.allocate_tensors()
        self.input = _spec(self._interpreter.get_input_details()[0])
        self.outputs = self._output_specs()
        self._batch = self.input.shape[0]

    def _output_specs(self) -> list[TensorSpec]:
        """Outputs in a fixed order, narrowest first: the class probabilities, then any features output
        (stage 1 models carry one for the out-of-distribution score). TFLite's own order is not fixed."""
        specs = [_spec(d) for d in self._interpreter.get_output_details()]
        return sorted(specs, key=lambda spec: (spec.shape[-1], spec.index))

    @property
    def input_size(self) -> int:
        return self.input.shape[1]

    @property
    def xnnpack(self) -> bool:
        return uses_xnnpack(self._interpreter)

    def predict(self, pixels: np.ndarray) -> list[np.ndarray]:
        """Run a batch of uint8 images (N, size, size, 1); returns each output as float32 (N, ...),
        probabilities first."""
        if pixels.dtype != np.uint8 or pixels.shape[1:] != self.input.shape[1:]:
            raise ValueError(f"model expects uint8 images of shape {self.input.shape[1:]}, "
                             f"got {pixels.dtype} {pixels.shape[1:]}")
        if pixels.shape[0] != self._batch:
            self._interpreter.resize_tensor_input(self.input.index, [pixels.shape[0], *self.input.shape[1:]])
            self._interpreter.allocate_tensors()
            self._batch = pixels.shape[0]
            self.outputs = self._output_specs()
        self._interpreter.set_tensor(self.input.index, _quantize_input(pixels, self.input))
        self._interpreter.invoke()
        return [_dequantize(self._interpreter.get_tensor(o.index), o) for o in self.outputs]


# What the interpreter's C++ side prints on stderr that says nothing to the user (once per process).
_NATIVE_NOISE = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)


@contextlib.contextmanager
def native_log_filtered():
    """Hold back the interpreter's native stderr lines while an interpreter is built (XNNPACK's "INFO: Created
    TensorFlow Lite XNNPACK delegate" on every run); any other line, a real warning or error, is passed on. The
    C++ side writes to file descriptor 2 directly, so it is caught there, not through sys.stderr."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (an embedding host): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and line.strip() not in _NATIVE_NOISE]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def uses_xnnpack(interpreter) -> bool:
    """Whether XNNPACK runs (part of) an allocated interpreter's model, as the interpreter reports it: a
    delegate applied to the graph shows as a DELEGATE node, and XNNPACK is the only one the box applies."""
    return any(op.get("op_name") == "DELEGATE" for op in interpreter._get_ops_details())


def _quantize_input(pixels: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if spec.dtype == np.float32:
        return pixels.astype(np.float32)
    if spec.scale == 0.0 or (spec.scale == 1.0 and spec.zero_point == 0 and spec.dtype == np.uint8):
        return pixels.astype(spec.dtype)  # raw pixels are the model's input as they are
    info = np.iinfo(spec.dtype)
    q = np.rint(pixels.astype(np.float32) / spec.scale) + spec.zero_point
    return np.clip(q, info.min, info.max).astype(spec.dtype)


def _dequantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if spec.scale == 0.0:
        return values.astype(np.float32)
    # int64 before subtracting the zero point: uint8 arithmetic would wrap around
    return ((values.astype(np.int64) - spec.zero_point) * spec.scale).astype(np.float32)


def pad_batch(pixels: np.ndarray, batch: int) -> np.ndarray:
    """`pixels` with zero images appended up to `batch`, so a short batch reuses the interpreter's buffers
    (a new batch size means re-allocating, and re-preparing the delegate)."""
    if len(pixels) >= batch:
        return pixels
    return np.concatenate([pixels, np.zeros((batch - len(pixels), *pixels.shape[1:]), pixels.dtype)])


def predict_in_batches(model, pixels: np.ndarray, batch: int) -> list[np.ndarray]:
    """model.predict over `pixels` in fixed-size batches (the last one padded); each output concatenated."""
    chunks = []
    for start in range(0, len(pixels), batch):
        chunk = pixels[start:start + batch]
        chunks.append([out[:len(chunk)] for out in model.predict(pad_batch(chunk, batch))])
    return [np.concatenate(parts) for parts in zip(*chunks)]
