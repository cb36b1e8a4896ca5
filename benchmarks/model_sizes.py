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
from cxr_edge.images import to_model_input
from cxr_train.alexnet import PRESETS, build_model
from cxr_train.synth import image_rng, make_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; {time.strftime('%Y-%m-%d')}")
    print(f"{'preset':14s} {'weights':>12s} {'float32 MB':>11s} {'int8 MB':>9s} {'ratio':>6s}")
    for name in args.presets:
        size = PRESETS[name].image_size
        calibration = np.stack([to_model_input(make_image(label, 299, image_rng(0, label, i)).pixels, size)
                                for i in range(2) for label in ("normal", "covid19")])
        model = build_model(name, 3)
        float32 = len(convert(model, "float32"))
        int8 = len(convert(model, "int8", calibration))
        print(f"{name:14s} {model.count_params():>12,d} {float32 / 1e6:>11.2f} {int8 / 1e6:>9.2f} {float32 / int8:>6.2f}")


if __name__ == "__main__":
    main()
