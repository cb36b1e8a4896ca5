"""Run folders whose models are set by hand, not trained: for tests whose figures must not depend on how a
training run happened to go (conftest's handmade_run, test_calibration's linear bundle), and the model that full
int8 breaks, for `cxr-convert --search` (scripts/make_outlier_run.py)."""

import json
import shutil
from pathlib import Path

import numpy as np


def hand_set_model(features, n_out: int, weights, bias, name: str, size: int = 64):
    """Rescaling, then `features` (a Keras layer), then a softmax Dense layer with these weights and bias."""
    import keras

    inputs = keras.Input((size, size, 1))
    x = keras.layers.Flatten()(features(keras.layers.Rescaling(1 / 255)(inputs)))
    model = keras.Model(inputs, keras.layers.Dense(n_out, activation="softmax", name="head")(x), name=name)
    model.layers[-1].set_weights([np.asarray(weights, np.float32), np.asarray(bias, np.float32)])
    return model


def handmade_run_dir(tiny_run: Path, run: Path, data: Path | None = None) -> dict:
    """`run` made a run folder with `tiny_run`'s configuration (stage 1 threshold 0.5) and its split, or a
    split of `data`, ready for hand-set stage1.keras and stage2.keras; returns the configuration."""
    from cxr_train.dataset import make_split, scan, write_split

    run.mkdir()
    config = json.loads((tiny_run / "config.json").read_text())
    if data is None:
        shutil.copy(tiny_run / "split.csv", run / "split.csv")
    else:
        found = scan(data)
        write_split(make_split(found.records, seed=0), run / "split.csv")
        config.update(data_dir=str(data), counts=found.counts())
    config["stage1_threshold"] = 0.5
    (run / "config.json").write_text(json.dumps(config))
    return config


# The coded data set: each class written into two features that hand-set models read (coded_models).
NORMAL_BRIGHTNESS, ABNORMAL_BRIGHTNESS = 0.35, 0.65  # image means; stage 1's boundary is at 0.5
CONTRAST = {"lung_opacity": -0.3, "viral_pneumonia": 0.0, "covid19": 0.3}  # top-left minus bottom-right
CONTRAST_BOUNDARIES = (-0.15, 0.15)  # stage 2's, halfway between the classes


def write_coded_dataset(out: Path, per_class: int, size: int = 64, seed: int = 0) -> Path:
    """A labelled folder whose class is written in the image's mean brightness (normal or abnormal) and in
    the contrast between its top-left and bottom-right quadrants (the disease), each jittered by at most
    0.05 and every pixel noisy: images far (0.1 or more) from the hand-set models' boundaries, so that a
    sound int8 copy gives every one of them the float model's label."""
    from PIL import Image

    from cxr_edge.labels import LABELS

    rng = np.random.default_rng(seed)
    half = size // 2
    for label in LABELS:
        folder = out / label
        folder.mkdir(parents=True)
        for i in range(per_class):
            brightness = (NORMAL_BRIGHTNESS if label == "normal" else ABNORMAL_BRIGHTNESS) + rng.uniform(-0.05, 0.05)
            contrast = CONTRAST.get(label, 0.0) + rng.uniform(-0.05, 0.05)
            level = np.full((size, size), brightness)
            level[:half, :half] += contrast / 2
            level[half:, half:] -= contrast / 2
            pixels = np.clip(level + rng.normal(0, 0.03, level.shape), 0, 1)
            Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(folder / f"{label}-{i}.png")
    return out


def coded_models(size: int = 64):
    """Stage 1 and stage 2 reading the coded data set's features with large weights: confident everywhere
    but near their boundaries, where no coded image lies."""
    import keras

    stage1 = hand_set_model(keras.layers.GlobalAveragePooling2D(), 2, [[-200.0, 200.0]],
                            [100.0, -100.0], "stage1", size)  # logits +-200 (brightness - 0.5)
    c1, c2 = CONTRAST_BOUNDARIES
    w2 = np.zeros((4, 3))  # the four quadrant means (top-left first) to three logits
    w2[0], w2[3] = [-200, 0, 200], [200, 0, -200]  # logits: -200 (f - c1), 0, 200 (f - c2)
    stage2 = hand_set_model(keras.layers.AveragePooling2D(size // 2), 3, w2, [200 * c1, 0, -200 * c2],
                            "stage2", size)
    return stage1, stage2


OUTLIER_SCALE = 1000.0  # the outlier layer's last output: this many times the image's mean brightness


def outlier_models(size: int = 64):
    """The coded models, but stage 1 reads the brightness through a layer, "outlier", whose eight outputs are the
    brightness seven times and OUTLIER_SCALE times it once (a channel that fires a thousand times harder than the
    rest, as a layer that reacts to burned-in text would). Int8 spreads that tensor's 256 steps over 0 to 700, about
    2.7 each, and the brightness the head reads (0.3 to 0.7) falls into the lowest step: every image is called
    normal. Kept in float, the layer and its reader give the float model's answers."""
    import keras

    outlier = keras.layers.Dense(8, name="outlier")
    head = np.zeros((8, 2))
    head[0] = [-200.0, 200.0]  # logits +-200 (brightness - 0.5), from the first output only
    stage1 = hand_set_model(lambda x: outlier(keras.layers.GlobalAveragePooling2D()(x)), 2, head, [100.0, -100.0],
                            "stage1", size)
    weights = np.ones((1, 8), np.float32)
    weights[0, 7] = OUTLIER_SCALE
    outlier.set_weights([weights, np.zeros(8, np.float32)])
    return stage1, coded_models(size)[1]


def write_run(run: Path, data: Path, models, size: int = 64) -> Path:
    """A run folder, as `cxr-train fit` leaves one, for hand-set `models` (stage 1, stage 2) on the labelled folder
    `data`: its split (seed 0), its configuration (stage 1 threshold 0.5) and the two models."""
    from cxr_edge.labels import LABELS
    from cxr_train.dataset import make_split, scan, write_split

    run.mkdir(parents=True)
    found = scan(data)
    write_split(make_split(found.records, seed=0), run / "split.csv")
    config = {"preset": "hand-set", "image_size": size, "seed": 0, "data_dir": str(data), "data_name": data.name,
              "synthetic": True, "counts": found.counts(), "stage1_threshold": 0.5, "target_sensitivity": None,
              "labels": list(LABELS)}
    (run / "config.json").write_text(json.dumps(config, indent=2))
    for model in models:
        model.save(run / f"{model.name}.keras")
    return run
