"""Training throughput of each preset (images/s) and whether training waits on its input pipeline;
float vs int8 parity of a small synthetic run.

Run: .venv/bin/python benchmarks/training.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import keras
import numpy as np

from cxr_edge.inputs.images import to_model_input
from cxr_train.alexnet import PRESETS, build_model
from cxr_train.data import make_dataset
from cxr_train.fit import FitConfig, ThroughputMeter, fit, input_images_per_s
from cxr_train.synth import image_rng, make_image, write_dataset


def training_throughput(preset: str, batches: int = 6, batch_size: int = 16) -> dict:
    """Images/s of training steps (epochs after the first, which traces) vs the input pipeline alone."""
    size = PRESETS[preset].image_size
    labels = ("lung_opacity", "viral_pneumonia", "covid19")
    base = [to_model_input(make_image(lb, 299, image_rng(0, lb, i)).pixels, size) for i in range(4) for lb in labels]
    n = batches * batch_size
    pixels = np.stack([base[i % len(base)] for i in range(n)])
    targets = np.arange(n) % 3
    model = build_model(preset, 3)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
    ds = make_dataset(pixels, targets, batch_size, training=True, seed=0)
    meter = ThroughputMeter(n)
    model.fit(ds, epochs=3, steps_per_epoch=batches, callbacks=[meter], shuffle=False, verbose=0)  # endless stream
    train = meter.images_per_s()
    feed = input_images_per_s(ds)
    return {"preset": preset, "train_images_per_s": round(train, 1), "input_images_per_s": round(feed, 1),
            "input_headroom": round(feed / train, 1), "waits_on_input": feed < 1.5 * train}


def parity(per_class: int = 100) -> dict:
    """A tiny run on synthetic data converted to int8: agreement and accuracy/macro-F1 deltas."""
    from cxr_convert.bundle import ConvertOptions, build_bundle

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_dataset(tmp / "data", per_class, size=128, seed=11)
        fit(FitConfig(str(data), str(tmp / "run"), preset="tiny", epochs_stage1=15, epochs_stage2=15), log=lambda m: None)
        manifest = build_bundle(tmp / "run", tmp / "bundle", ConvertOptions(), log=lambda m: None)
        p = json.loads((tmp / "bundle" / "parity.json").read_text())
    f, q = p["models"]["keras_float"]["cascade"], p["models"]["quantized"]["cascade"]
    return {"parity_images": p["n_images"], "verdict": p["gate"]["verdict"], "agreement": round(q["agreement"], 4),
            "float_accuracy": round(f["accuracy"], 4), "accuracy_delta": round(q["accuracy"] - f["accuracy"], 4),
            "macro_f1_delta": round(q["macro_f1"] - f["macro_f1"], 4), "deployable": manifest["deployable"]}


def main() -> None:
    for preset in PRESETS:
        print(training_throughput(preset))
    print(parity())


if __name__ == "__main__":
    main()
