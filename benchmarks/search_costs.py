"""What each kind of `cxr-convert --search` candidate costs on alexnet-edge (227 px, both stages), side by side in
one run: size, milliseconds per image at batch 1 and the peak memory of a process that loads both stages and
classifies one image (cxr_convert.search.cost, what parity.md's search table shows). The layers kept out of int8
are the quantization debugger's worst, as the search ranks them, and the first convolution (a layer whose cost
depends most on its precision).

Run: .venv/bin/python -m benchmarks.search_costs [--layers 1 2 4] [--rounds 3]

Costs do not depend on training: the models are untrained and seeded. Each row's time is the median of --rounds
alternated rounds, so that a slow moment of the machine does not fall on one candidate only.
"""

from __future__ import annotations

import argparse
import platform
import time

import keras
import numpy as np

from cxr_convert import precision, search
from cxr_convert.tflite import convert
from cxr_edge.inputs.images import to_model_input
from cxr_edge.labels import LABELS
from cxr_train.alexnet import build_model
from cxr_train.synth import image_rng, make_image

SIZE = 227


def candidates(layer_counts: list[int]) -> dict[str, dict[str, bytes]]:
    keras.utils.set_random_seed(0)
    deployed = {f"stage{n}": build_model("alexnet-edge", k, name=f"stage{n}") for n, k in ((1, 2), (2, 3))}
    calibration = np.stack([to_model_input(make_image(lb, 299, image_rng(5, lb, i)).pixels, SIZE)
                            for i in range(8) for lb in LABELS])
    float32 = {s: convert(m, "float32") for s, m in deployed.items()}
    rows = {"int8": {s: convert(m, "int8", calibration) for s, m in deployed.items()}}
    sets = list(search.layers_out_of_int8(deployed, float32, calibration))
    graphs = {s: precision.graph(float32[s]) for s in float32}
    first_conv = {(s, name) for s in float32 for name in
                  precision.with_inputs(graphs[s], next(op.name for op in graphs[s] if op.kind == "CONV_2D"))}
    kept = {f"worst {k} layers": sets[k - 1] for k in layer_counts} | {"the first convolution": first_conv}
    for what, layers in kept.items():
        print(f"{what}: {', '.join(f'{s} {name}' for s, name in sorted(layers))}")
        for kind in precision.LAYER_PRECISIONS:
            recipes = {s: precision.Recipe(layers={n: kind for stage, n in layers if stage == s}) for s in float32}
            rows[f"int8, {what} {kind}"] = {s: precision.quantize(float32[s], calibration, recipes[s])
                                            for s in float32}
    rows["float16"] = {s: convert(m, "float16") for s, m in deployed.items()}
    rows["float32"] = float32
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    models = candidates(args.layers)
    pixels = np.stack([to_model_input(make_image(lb, 299, image_rng(9, lb, i)).pixels, SIZE)
                       for i in range(13) for lb in LABELS])[:search.TIMED_IMAGES]
    rounds = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, pair in models.items():
            rounds[name].append(search.cost(pair, pixels))
    print(f"machine: {platform.machine()}, {platform.processor() or '?'}; {time.strftime('%Y-%m-%d')}; "
          f"alexnet-edge, both stages, batch 1, median of {args.rounds} rounds")
    base = {key: float(np.median([r[key] for r in rounds["int8"]])) for key in ("size_bytes", "ms_per_image")}
    print("| candidate | size | x int8 | ms per image | x int8 | peak memory |\n|---|---|---|---|---|---|")
    for name, measured in rounds.items():
        size, ms = measured[0]["size_bytes"], float(np.median([r["ms_per_image"] for r in measured]))
        memory = float(np.median([r["peak_memory_mb"] for r in measured]))
        print(f"| {name} | {size / 1e6:.2f} MB | x{size / base['size_bytes']:.2f} | {ms:.2f} | "
              f"x{ms / base['ms_per_image']:.2f} | {memory:.0f} MB |")


if __name__ == "__main__":
    main()
