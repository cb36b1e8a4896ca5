"""The interpreter probe: a 3 kB int8 model shipped with cxr-edge, and the outputs the reference machine's
interpreter gave for 16 inputs. `cxr-edge --version` runs it, so that any box can tell, with no bundle at hand,
whether XNNPACK runs int8 models here and whether this interpreter computes what the reference did.

The bundle's own self-test (cxr_edge.bundle.selftest) is what guards results; the probe is the early word, and the
model in the upstream reproduction (scripts/litert_repro.py). scripts/make_probe.py regenerates both files.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

import numpy as np

from cxr_edge.models.interpreter import backend, native_log_filtered, uses_xnnpack

MODEL, KNOWN = "model.tflite", "known.npz"
INPUT_SHAPE = (16, 16, 16, 1)  # 16 images of 16x16 pixels, one batch


def run_probe_model(model: bytes, inputs: np.ndarray, kernels: str) -> tuple[np.ndarray, bool]:
    """The model's raw uint8 outputs for `inputs` (one batch) and whether XNNPACK ran it."""
    b = backend()
    with native_log_filtered():
        interpreter = b.interpreter_class(model_content=model, num_threads=1,
                                          experimental_op_resolver_type=b.resolver(kernels))
        detail = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(detail["index"], list(inputs.shape))
        interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], inputs)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy(), uses_xnnpack(interpreter)


@dataclass(frozen=True)
class ProbeResult:
    xnnpack: bool
    max_steps: int  # largest difference from the reference outputs, in uint8 steps

    def describe(self) -> str:
        verdict = "bit-exact" if self.max_steps == 0 else f"{self.max_steps} steps off the reference: SUSPECT"
        return f"XNNPACK: {'on' if self.xnnpack else 'off'}; int8 probe: {verdict}"


def probe() -> ProbeResult:
    """Run the probe with the interpreter's default kernels and compare with the reference outputs."""
    here = files(__name__)
    with np.load(here.joinpath(KNOWN).open("rb"), allow_pickle=False) as known:
        inputs, expected = known["inputs"], known["outputs"]
    outputs, xnnpack = run_probe_model(here.joinpath(MODEL).read_bytes(), inputs, "default")
    return ProbeResult(xnnpack, int(np.abs(outputs.astype(np.int64) - expected.astype(np.int64)).max()))
