"""Per-layer precision on a float32 TFLite model, with Google's ai-edge-quantizer: int8 everywhere but the layers
chosen to keep float16 weights with float arithmetic, or int16 activations. TensorFlow's converter cannot express
either per layer. What it writes uses only LiteRT's built-in ops (QUANTIZE and DEQUANTIZE around the kept layers),
so the box needs nothing new to run it.

A layer is named by its op's output tensor in the float32 model (what ai-edge-quantizer matches its rules on). To
take a layer out of int8, the op and the ops producing its activation inputs change precision: an input quantized
to int8 before the layer reads it has lost what the layer needed, whatever the layer's own precision. That is
what reverting a layer means in NNCF's accuracy control too (its weights and its input quantizers).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

LAYER_PRECISIONS = ("float16", "int16")  # float16: float arithmetic, fp16 weights; int16: int16 activations
ACTIVATION_RANGES = ("min-max", "moving-average")
WEIGHT_RANGES = ("min-max", "mse")
INPUT_RANGE = (0.0, 255.0)  # the image contract's raw pixels: the input's range is known, not calibrated


@dataclass(frozen=True)
class Op:
    kind: str  # the TFLite op, e.g. CONV_2D
    name: str  # its output tensors' names, joined with ";"
    inputs: tuple[int, ...]  # tensor indices
    outputs: tuple[int, ...]
    output_names: tuple[str, ...]
    computes_float: bool  # its outputs are float32 (not shape arithmetic in int32): a layer int8 can change


@dataclass(frozen=True)
class Recipe:
    """How to quantize one model. `layers` maps a layer's name to its precision; the rest is int8."""
    activation_ranges: str = "min-max"
    weight_ranges: str = "min-max"
    layers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        for value, allowed in ((self.activation_ranges, ACTIVATION_RANGES), (self.weight_ranges, WEIGHT_RANGES),
                               *((p, LAYER_PRECISIONS) for p in self.layers.values())):
            if value not in allowed:
                raise ValueError(f"unknown choice {value!r}: choose one of {', '.join(allowed)}")


def graph(model: bytes) -> list[Op]:
    """The model's ops, in execution order."""
    from ai_edge_quantizer.qtyping import BuiltinOperator, TensorType
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    kinds = {code: kind for kind, code in vars(BuiltinOperator).items() if not kind.startswith("_")}
    flat = fb.read_model(model)
    subgraph = flat.subgraphs[0]
    names = [fb.get_tensor_name(t) for t in subgraph.tensors]
    ops = []
    for op in subgraph.operators:
        code = flat.operatorCodes[op.opcodeIndex].builtinCode
        outputs = tuple(int(t) for t in op.outputs)
        output_names = tuple(names[t] for t in outputs)
        computes_float = all(subgraph.tensors[t].type == TensorType.FLOAT32 for t in outputs)
        ops.append(Op(kinds.get(code, str(code)), ";".join(output_names), tuple(int(t) for t in op.inputs if t >= 0),
                      outputs, output_names, computes_float))
    return ops


def with_inputs(ops: list[Op], name: str) -> list[str]:
    """Layer `name` and the layers that produce its activation inputs (weights and biases have no producer, nor
    has the model's input; a reshape's target shape is int32 arithmetic, not an activation)."""
    producer = {t: op for op in ops for t in op.outputs}
    layer = next(op for op in ops if op.name == name)
    return [name] + [producer[t].name for t in layer.inputs
                     if t in producer and producer[t].computes_float and producer[t].name != name]


def upstream(ops: list[Op], name: str) -> set[str]:
    """The layers whose outputs reach layer `name`'s, itself included."""
    producer = {t: op for op in ops for t in op.outputs}
    found, todo = set(), [next(op for op in ops if op.name == name)]
    while todo:
        op = todo.pop()
        if op.name not in found:
            found.add(op.name)
            todo += [producer[t] for t in op.inputs if t in producer]
    return found


def quantize(float_model: bytes, calibration: np.ndarray, recipe: Recipe) -> bytes:
    """`float_model` quantized by `recipe`, its activation ranges calibrated on `calibration` (N, size, size, 1)
    uint8. Raises ValueError when ai-edge-quantizer dropped a layer's rule (it does so silently for ops it cannot
    quantize that way)."""
    from ai_edge_quantizer import calibrator, quantizer, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName
    from ai_edge_quantizer.utils import qsv_utils

    every = TFLOperationName.ALL_SUPPORTED
    weighted = (TFLOperationName.CONV_2D, TFLOperationName.DEPTHWISE_CONV_2D, TFLOperationName.FULLY_CONNECTED)
    rules = recipe_manager.RecipeManager()
    rules.add_static_config(".*", every, activation_num_bits=8, weight_num_bits=8)
    if recipe.weight_ranges == "mse":  # the layers with weights only: the rule would drop every other op from int8
        for kind in weighted:
            rules.add_static_config(".*", kind, activation_num_bits=8, weight_num_bits=8,
                                    algorithm_key=AlgorithmName.MSE)
    for name, precision in recipe.layers.items():
        scope = f"^{re.escape(name)};$"  # an op's scope is its output names, each followed by ";"
        if precision == "float16":  # float arithmetic; the weights, where the op has any, stored in float16
            rules.add_quantization_config(scope, every, algorithm_key=AlgorithmName.NO_QUANTIZE)
            for kind in weighted:
                rules.add_weight_only_config(scope, kind, num_bits=16, algorithm_key=AlgorithmName.FLOAT_CASTING)
        else:
            rules.add_static_config(scope, every, activation_num_bits=16, weight_num_bits=8)
    update = qsv_utils.min_max_update if recipe.activation_ranges == "min-max" else qsv_utils.moving_average_update
    signature, input_name, tensor_name = _signature(float_model)
    with _quiet():
        calib = calibrator.Calibrator(float_model, num_threads=os.cpu_count() or 1, qsv_update_func=update)
        calib.calibrate({signature: [{input_name: image[np.newaxis].astype(np.float32)} for image in calibration]},
                        rules)
        ranges = calib.get_model_qsvs()
        known = ranges[tensor_name]
        ranges[tensor_name] = {**known, "min": np.full_like(known["min"], INPUT_RANGE[0]),
                               "max": np.full_like(known["max"], INPUT_RANGE[1])}
        qt = quantizer.Quantizer(float_model)
        qt.load_quantization_recipe(rules.get_quantization_recipe())
        quantized = bytes(qt.quantize(ranges, enable_progress_report=False).quantized_model)
    _check_applied(quantized, recipe, graph(float_model))
    return quantized


def _signature(model: bytes) -> tuple[str, str, str]:
    """(signature key, its input's name, the input tensor's name)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    (key, signature), = interpreter.get_signature_list().items()
    return key, signature["inputs"][0], interpreter.get_input_details()[0]["name"]


def tensor_types(model: bytes) -> dict[str, str]:
    """Each tensor's name and element type, e.g. {"stage1/head/MatMul": "float32"}."""
    from ai_edge_litert.interpreter import Interpreter

    return {t["name"]: np.dtype(t["dtype"]).name for t in Interpreter(model_content=model).get_tensor_details()}


_WANTED = {"float16": ("float32",), "int16": ("int16",)}


def _check_applied(model: bytes, recipe: Recipe, ops: list[Op]) -> None:
    """Each kept layer's outputs in the quantized model have the type its precision gives (they keep their names)."""
    types, outputs = tensor_types(model), {op.name: op.output_names for op in ops}
    dropped = [name for name, precision in recipe.layers.items()
               if any(types.get(out) not in _WANTED[precision] for out in outputs[name])]
    if dropped:
        raise ValueError(f"ai-edge-quantizer cannot keep {', '.join(dropped)} in "
                         f"{', '.join(sorted({recipe.layers[d] for d in dropped}))}")


@contextlib.contextmanager
def _quiet():
    """ai-edge-quantizer's progress bars and the interpreter's debugging warning say nothing to our user."""
    from cxr_edge.models.interpreter import native_log_filtered

    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), native_log_filtered():
        warnings.simplefilter("ignore")
        yield
