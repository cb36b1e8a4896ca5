"""Run folders whose models are set by hand, not trained: for tests whose figures must not depend on how a
training run happened to go (conftest's handmade_run, test_calibration's linear bundle)."""

import json
import shutil
from pathlib import Path

import numpy as np


def hand_set_model(features, n_out: int, weights, bias, name: str, size: int = 64):
    """Rescaling, then `features` (a Keras layer), then a softmax Dense layer with these weights and bias."""
    import keras

    inputs = keras.Input((size, size, 1))
    x = keras.layers.Flatten()(features(keras.layers.Rescaling(1 / 255)(inputs)))
    model = keras.Model(inputs, keras.layers.Dense(n_out, activation="softmax")(x), name=name)
    model.layers[-1].set_weights([np.asarray(weights, np.float32), np.asarray(bias, np.float32)])
    return model


def handmade_run_dir(tiny_run: Path, run: Path) -> dict:
    """`run` made a run folder with `tiny_run`'s split and configuration (stage 1 threshold 0.5), ready for
    hand-set stage1.keras and stage2.keras; returns the configuration."""
    run.mkdir()
    shutil.copy(tiny_run / "split.csv", run / "split.csv")
    config = json.loads((tiny_run / "config.json").read_text())
    config["stage1_threshold"] = 0.5
    (run / "config.json").write_text(json.dumps(config))
    return config
