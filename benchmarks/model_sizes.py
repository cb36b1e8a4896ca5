"""Float32 vs int8 TFLite size of each preset's stage 2 model (sizes do not depend on training).

Run: .venv/bin/python benchmarks/model_sizes.py [--presets alexnet alexnet-edge tiny]
Calibration uses a handful of synthetic radiographs, enough for the converter to set ranges.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from cxr_convert.tflite import convert
from cxr_edge.inputs.images import to_model_input
from cxr_train.alexnet import PRESETS, build_model
from cxr_train.synth import image_rng, make_image


def measure(presets=tuple(PRESETS)) -> list[dict]:
    """Weights and float32/int8 .tflite sizes of each preset's 3-class model."""
    rows = []
    for name in presets:
        size = PRESETS[name].image_size
        calibration = np.stack([to_model_input(make_image(label, 299, image_rng(0, label, i)).pixels, size)
                                for i in range(2) for label in ("normal", "covid19")])
        model = build_model(name, 3)
        float32 = len(convert(model, "float32"))
        int8 = len(convert(model, "int8", calibration))
        rows.append({"preset": name, "weights": model.count_params(), "float32_mb": round(float32 / 1e6, 2),
                     "int8_mb": round(int8 / 1e6, 2), "ratio": round(float32 / int8, 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    args = parser.parse_args()
    print(f"machine: {platform.machine()}; {time.strftime('%Y-%m-%d')}")
    print(f"{'preset':14s} {'weights':>12s} {'float32 MB':>11s} {'int8 MB':>9s} {'ratio':>6s}")
    for r in measure(args.presets):
        print(f"{r['preset']:14s} {r['weights']:>12,d} {r['float32_mb']:>11.2f} {r['int8_mb']:>9.2f} {r['ratio']:>6.2f}")


if __name__ == "__main__":
    main()
