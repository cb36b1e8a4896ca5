"""A minimal, standalone reproduction of the int8 fault of LiteRT >= 2.1's XNNPACK on qemu 7.2's SME-capable
arm64 CPU (`QEMU_CPU=max`), for an upstream bug report (qemu's or LiteRT's: qemu 10.0.2 gives the right
answers on its own max CPU, and so do the Raspberry Pi CPUs cortex-a72 and cortex-a76 on qemu 7.2): a 3 kB
full-integer model (one 3x3 convolution, average pooling, a dense softmax; uint8 in and out), 16 random
16x16 inputs, and the outputs that x86_64 gives for them (LiteRT 2.0.3 and 2.3.0, XNNPACK on or off, agree bit
for bit). Needs only numpy and ai-edge-litert.

    python litert_repro.py [MODEL.tflite KNOWN.npz]   # default: cxr-edge's probe, edge/cxr_edge/models/probe/

Prints, for the interpreter's default kernels (XNNPACK) and its built-in ones, "match" or the largest
difference in uint8 steps, and whether XNNPACK ran; exit status 1 on any mismatch.
"""

import platform
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

PROBE = Path(__file__).resolve().parents[1] / "edge" / "cxr_edge" / "models" / "probe"
RESOLVERS = {"default": OpResolverType.AUTO, "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}


def run(model: bytes, inputs: np.ndarray, resolver) -> tuple[np.ndarray, bool]:
    interpreter = Interpreter(model_content=model, num_threads=1, experimental_op_resolver_type=resolver)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(inputs.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, inputs)
    interpreter.invoke()
    xnnpack = any(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]), xnnpack


def main() -> int:
    model_path, known_path = (Path(a) for a in sys.argv[1:3]) if len(sys.argv) > 2 else \
        (PROBE / "model.tflite", PROBE / "known.npz")
    known = np.load(known_path)
    failed = False
    for name, resolver in RESOLVERS.items():
        outputs, xnnpack = run(model_path.read_bytes(), known["inputs"], resolver)
        diff = int(np.abs(outputs.astype(np.int64) - known["outputs"].astype(np.int64)).max())
        failed |= diff > 0
        print(f"ai-edge-litert {version('ai-edge-litert')} on {platform.machine()}, {name} kernels "
              f"(XNNPACK {'on' if xnnpack else 'off'}): " + ("match" if diff == 0 else f"DIFFERS by up to {diff} steps"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
