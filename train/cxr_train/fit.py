"""`cxr-train fit`: stage 1 (normal vs abnormal), then stage 2 (the three diseases), then the cascade's
evaluation on the held-out test split. Everything a run needs to be reproduced lands in its folder."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from cxr_edge.atomic import write_atomic
from cxr_edge.inputs.images import IMAGE_CONTRACT_VERSION, RESIZE_FILTER
from cxr_edge.labels import LABELS, STAGE1_LABELS, STAGE2_LABELS
from cxr_edge.models.cascade import sensitivity_threshold

from . import __version__
from .alexnet import PRESETS, TRUNK_LAYERS, build_model, preset_config
from .data import class_weights, label_indices, load_pixels, make_dataset
from .dataset import SPLITS, DatasetError, Record, make_split, read_split, scan, select, write_split
from .evaluate import evaluate_predictions, write_eval
from .plots import plot_curves
from .pretrained import copy_matching_layers, load_init_weights


class RunError(ValueError):
    """A run folder that cannot be used (already finished, not writable, incomplete)."""


@dataclass
class FitConfig:
    data_dir: str
    out: str
    preset: str = "alexnet-edge"
    image_size: int | None = None  # None: the preset's
    epochs_stage1: int = 30
    epochs_stage2: int = 50
    batch_size: int = 32
    learning_rate: float | None = None  # None: the preset's
    seed: int = 0
    init_weights: str | None = None
    split: str | None = None  # reuse a saved split.csv
    target_sensitivity: float = 0.95
    freeze_epochs: int = 0
    stage2_from_stage1: bool = True
    patience: int = 6
    overwrite: bool = False
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    # Several processes (JAX backend only): jax.distributed.initialize's parameters.
    coordinator: str | None = None
    num_processes: int = 1
    process_id: int = 0
    extra: dict = field(default_factory=dict)

    def resolve(self) -> None:
        preset = PRESETS.get(self.preset)
        if preset is None:
            raise RunError(f"unknown preset {self.preset!r}: choose one of {', '.join(PRESETS)}")
        self.image_size = self.image_size or preset.image_size
        self.learning_rate = self.learning_rate or preset.learning_rate


def is_finished(run_dir: Path) -> bool:
    return (run_dir / "stage2.keras").is_file() and (run_dir / "eval" / "metrics.json").is_file()


@dataclass
class Parallel:
    """Where training runs: Keras 3's data-parallel distribution over every device of every process (JAX
    backend), or one device (TensorFlow backend: Keras 3 runs no tf.distribute multi-worker strategy,
    keras-team/keras#20585). Only the first process writes the run folder."""

    distribution: object | None  # keras.distribution.DataParallel, or None
    devices: int
    process_id: int = 0
    num_processes: int = 1

    @property
    def chief(self) -> bool:
        return self.process_id == 0

    def scope(self):
        return self.distribution.scope() if self.distribution is not None else contextlib.nullcontext()

    def describe(self) -> dict:
        return {"backend": keras.config.backend(), "processes": self.num_processes, "devices": self.devices,
                "distribution": type(self.distribution).__name__ if self.distribution is not None else None}


def start_parallel(cfg: FitConfig) -> Parallel:
    """Joins the other processes (when there are any) and lays the data-parallel mesh over all devices."""
    backend = keras.config.backend()
    if backend != "jax":
        if cfg.num_processes > 1:
            raise RunError(f"--num-processes {cfg.num_processes} needs --backend jax: Keras 3 has no multi-worker "
                           "training on TensorFlow (keras-team/keras#20585)")
        return Parallel(None, 1)
    if cfg.num_processes > 1:
        if not cfg.coordinator:
            raise RunError("--num-processes above 1 needs --coordinator HOST:PORT (process 0's address)")
        if not 0 <= cfg.process_id < cfg.num_processes:
            raise RunError(f"--process-id {cfg.process_id} is not in 0..{cfg.num_processes - 1}")
        import jax

        jax.distributed.initialize(cfg.coordinator, cfg.num_processes, cfg.process_id)
    devices = keras.distribution.list_devices()
    if cfg.batch_size % len(devices):
        raise RunError(f"--batch-size {cfg.batch_size} does not split evenly over {len(devices)} devices: "
                       f"choose a multiple of {len(devices)} (the batch size is the global one, over all devices)")
    return Parallel(keras.distribution.DataParallel(devices=devices), len(devices), cfg.process_id,
                    cfg.num_processes)


def _prepare_run_dir(cfg: FitConfig) -> Path:
    out = Path(cfg.out)
    if is_finished(out) and not cfg.overwrite:
        raise RunError(f"{out} already holds a finished run: pick another --out, or pass --overwrite to replace it")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RunError(f"cannot write to run folder {out}: {exc.strerror or exc}; choose a writable --out") from None
    return out


def _records(cfg: FitConfig, log) -> list[Record]:
    if cfg.split:
        records = read_split(cfg.split)
    else:
        found = scan(cfg.data_dir)
        for exc in found.unreadable:
            log(f"left out unreadable image: {exc}")
        if found.unreadable:
            log(f"left out {len(found.unreadable)} unreadable image(s) in all")
        records = make_split(found.records, cfg.seed, cfg.val_fraction, cfg.test_fraction)
    for split in SPLITS:
        present = {r.label for r in records if r.split == split}
        absent = [lb for lb in LABELS if lb not in present]
        if absent:
            raise DatasetError(f"class(es) {', '.join(absent)} absent from the {split} split: every class needs "
                               "images in train, val and test (add images or make a new split)")
    return records


def _counts(records: list[Record]) -> dict:
    return {s: {lb: sum(r.label == lb and r.split == s for r in records) for lb in LABELS} for s in SPLITS}


class ThroughputMeter(keras.callbacks.Callback):
    """Training images/s over the epochs after the first (which pays for tracing), validation excluded."""

    def __init__(self, n_images: int):
        super().__init__()
        self.n_images, self.times = n_images, []
        self._start = self._train_end = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._train_end = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        if self._start is not None and self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append((self._train_end or time.perf_counter()) - self._start)
        self._start = None

    def images_per_s(self) -> float | None:
        steady = self.times[1:] or self.times
        return self.n_images * len(steady) / sum(steady) if steady else None


def input_images_per_s(ds: tf.data.Dataset, max_batches: int = 50) -> float:
    """How fast the input pipeline alone delivers training batches (decode cache + augmentation)."""
    n, start = 0, time.perf_counter()
    for x, *_ in ds.take(max_batches):
        n += int(x.shape[0])
    return n / (time.perf_counter() - start)


def _train_stage(cfg: FitConfig, stage: str, labels: tuple[str, ...], x_train, y_train, x_val, y_val,
                 epochs: int, init: Callable[[keras.Model], None] | None, parallel: Parallel,
                 log) -> tuple[keras.Model, dict]:
    """Trains one stage on every process; returns a copy of the model on this process's own device (for
    predictions that need no other process) and the stage's throughput figures."""
    out = Path(cfg.out)
    whole = parallel.devices > 1  # data-parallel batches must split evenly over the devices
    if whole and len(x_val) < cfg.batch_size:
        raise RunError(f"{stage}: the val split has {len(x_val)} images, fewer than --batch-size {cfg.batch_size} "
                       f"over {parallel.devices} devices: lower --batch-size or add images")
    weights = class_weights(y_train, len(labels))
    val_ds = make_dataset(x_val, y_val, cfg.batch_size, training=False, seed=cfg.seed, weights=weights,
                          whole_batches=whole)
    steps = math.ceil(len(x_train) / cfg.batch_size)
    val_steps = len(x_val) // cfg.batch_size if whole else math.ceil(len(x_val) / cfg.batch_size)
    throughput = ThroughputMeter(steps * cfg.batch_size)
    history_csv = out / f"history_{stage}.csv"
    if parallel.chief:
        history_csv.unlink(missing_ok=True)
    checkpoints = _checkpoint_dir(out, parallel)
    with parallel.scope():
        model = build_model(cfg.preset, len(labels), cfg.image_size, name=stage)
        if init is not None:
            init(model)

    def run(first_epoch: int, last_epoch: int, trainable_trunk: bool) -> tf.data.Dataset:
        for name in TRUNK_LAYERS:
            model.get_layer(name).trainable = trainable_trunk
        train_ds = make_dataset(x_train, y_train, cfg.batch_size, training=True, seed=cfg.seed, weights=weights,
                                first_pass=first_epoch)
        callbacks = [throughput, keras.callbacks.ModelCheckpoint(str(checkpoints / f"{stage}.keras"),
                                                                 monitor="val_loss", save_best_only=True)]
        if parallel.chief:  # epoch-level hooks only: the other processes need not take part
            callbacks.append(keras.callbacks.CSVLogger(str(history_csv), append=True))
        if trainable_trunk:
            callbacks += [keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience,
                                                        restore_best_weights=True),
                          keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                            patience=max(1, cfg.patience // 2))]
        with parallel.scope():
            model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                          loss="sparse_categorical_crossentropy",
                          metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
            model.fit(train_ds, validation_data=val_ds, epochs=last_epoch, initial_epoch=first_epoch,
                      steps_per_epoch=steps, validation_steps=val_steps, callbacks=callbacks, shuffle=False,
                      verbose=2 if parallel.chief else 0)
        return train_ds

    frozen = min(cfg.freeze_epochs, epochs)
    if frozen:
        log(f"{stage}: {frozen} epoch(s) with the trunk frozen")
        train_ds = run(0, frozen, trainable_trunk=False)
    if epochs > frozen:
        train_ds = run(frozen, epochs, trainable_trunk=True)
    if parallel.chief:
        model.save(out / f"{stage}.keras")
    else:
        shutil.rmtree(checkpoints, ignore_errors=True)
    stats = {"train_images_per_s": throughput.images_per_s(), "input_images_per_s": input_images_per_s(train_ds),
             "class_weights": weights, "epochs_run": len(throughput.times)}
    return _local_copy(model, parallel), stats


def _checkpoint_dir(out: Path, parallel: Parallel) -> Path:
    """Where ModelCheckpoint saves: the run folder's checkpoints/ on process 0, a private temporary folder on
    the others. Every process saves alike: a save on process 0 alone, during fit(), desynchronised the
    processes' collective calls (JAX 0.10.2, Keras 3.15.1: "Received data size doesn't match expected size")."""
    if parallel.chief:
        (out / "checkpoints").mkdir(exist_ok=True)
        return out / "checkpoints"
    return Path(tempfile.mkdtemp(prefix=f"cxr-train-process{parallel.process_id}-"))


def _local_copy(model: keras.Model, parallel: Parallel) -> keras.Model:
    """The trained model with its weights on this process alone: under a distribution its variables span
    every process's devices, and a prediction on them would wait for processes that are not predicting."""
    if parallel.distribution is None:
        return model
    local = keras.models.clone_model(model)
    local.set_weights(model.get_weights())  # replicated weights: each process holds a whole copy
    return local


def _as_float(pixels):
    return tf.cast(pixels, tf.float32)


def predict(model: keras.Model, pixels: np.ndarray, batch_size: int = 64) -> np.ndarray:
    ds = tf.data.Dataset.from_tensor_slices(pixels).batch(batch_size).map(_as_float)
    return model.predict(ds, verbose=0)


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def fit(cfg: FitConfig, log: Callable[[str], None] = print) -> dict:
    """Train both stages and evaluate the cascade; returns the test metrics (process 0), or {} on the other
    processes of a multi-process run, which train alongside and write nothing."""
    cfg.resolve()
    chief = cfg.process_id == 0
    out = _prepare_run_dir(cfg) if chief else Path(cfg.out)
    if not chief:
        say = log
        log = lambda msg: say(f"process {cfg.process_id}: {msg}")  # noqa: E731
    records = _records(cfg, log)
    parallel = start_parallel(cfg)
    if chief:
        write_split(records, out / "split.csv")
    keras.utils.set_random_seed(cfg.seed)
    config = {"cxr_edge_version": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
              **_jax_version(), "python": platform.python_version(), "machine": platform.machine(),
              "parallel": parallel.describe(),
              **asdict(cfg), "data_dir": str(Path(cfg.data_dir).resolve()), "data_name": Path(cfg.data_dir).resolve().name,
              "synthetic": (Path(cfg.data_dir) / "synth.csv").is_file(),
              "preset_settings": preset_config(cfg.preset), "labels": list(LABELS),
              "stage1_labels": list(STAGE1_LABELS), "stage2_labels": list(STAGE2_LABELS),
              "image_contract": {"version": IMAGE_CONTRACT_VERSION, "resize_filter": RESIZE_FILTER,
                                 "input": [cfg.image_size, cfg.image_size, 1], "dtype": "uint8"},
              "counts": _counts(records), "status": "running"}
    if chief:
        _write_json(out / "config.json", config)

    start = time.perf_counter()
    log(f"decoding {len(records)} images at {cfg.image_size}x{cfg.image_size} (once, into memory)")
    by_split = {s: select(records, s) for s in SPLITS}
    pixels = {s: load_pixels(cfg.data_dir, by_split[s], cfg.image_size) for s in SPLITS}
    labels = {s: label_indices(by_split[s]) for s in SPLITS}
    decode_s = time.perf_counter() - start

    init_weights = cfg.init_weights
    init1 = (lambda m: log(f"stage1: loaded {', '.join(load_init_weights(m, init_weights))} from {init_weights}")) \
        if init_weights else None
    log(f"stage 1 (normal vs abnormal): {cfg.preset}, {cfg.epochs_stage1} epochs on {_where(parallel)}")
    stage1, stats1 = _train_stage(cfg, "stage1", STAGE1_LABELS, pixels["train"], (labels["train"] != 0).astype(np.int64),
                                  pixels["val"], (labels["val"] != 0).astype(np.int64), cfg.epochs_stage1, init1,
                                  parallel, log)
    if chief:
        val_p = predict(stage1, pixels["val"], cfg.batch_size)[:, 1]
        threshold = sensitivity_threshold(val_p, labels["val"] != 0, cfg.target_sensitivity)
        log(f"stage 1 threshold {threshold:.4f} reaches sensitivity >= {cfg.target_sensitivity} for abnormal on val")

    sick = {s: labels[s] != 0 for s in ("train", "val")}
    if cfg.stage2_from_stage1:
        init2 = lambda m: copy_matching_layers(stage1, m, skip=("logits",))  # noqa: E731
    else:
        init2 = init1
    log(f"stage 2 (lung opacity / viral pneumonia / covid19): {cfg.epochs_stage2} epochs")
    stage2, stats2 = _train_stage(cfg, "stage2", STAGE2_LABELS, pixels["train"][sick["train"]], labels["train"][sick["train"]] - 1,
                                  pixels["val"][sick["val"]], labels["val"][sick["val"]] - 1, cfg.epochs_stage2, init2,
                                  parallel, log)
    if not chief:
        log("done (process 0 writes the run folder)")
        return {}

    metrics = _evaluate(stage1, stage2, pixels["test"], labels["test"], threshold, "test", out, cfg.preset,
                        cfg.batch_size)
    plot_curves(out, out / "curves.png")
    config.update(status="finished", stage1_threshold=threshold, weights=int(stage1.count_params()),
                  seconds={"decode": round(decode_s, 1), "total": round(time.perf_counter() - start, 1)},
                  throughput={"stage1": stats1, "stage2": stats2})
    _write_json(out / "config.json", config)
    return metrics


def _where(parallel: Parallel) -> str:
    if parallel.distribution is None:
        return f"one device ({keras.config.backend()})"
    return (f"{parallel.devices} device(s) in {parallel.num_processes} process(es), data-parallel "
            f"({keras.config.backend()})")


def _jax_version() -> dict:
    if keras.config.backend() != "jax":
        return {}
    import jax

    return {"jax": jax.__version__}


def evaluate_run(run_dir: os.PathLike | str, split: str = "test", data_dir: str | None = None,
                 batch_size: int = 64) -> tuple[dict, Path]:
    """Recompute the evaluation of a saved run on one split; returns the metrics and the folder written."""
    run = Path(run_dir)
    config, stage1, stage2 = load_run(run)
    data = data_dir or config["data_dir"]
    records = select(read_split(run / "split.csv"), split)
    pixels = load_pixels(data, records, config["image_size"])
    metrics = _evaluate(stage1, stage2, pixels, label_indices(records), config["stage1_threshold"], split, run,
                        config["preset"], batch_size)
    return metrics, _eval_dir(run, split)


RUN_FILES = ("config.json", "split.csv", "stage1.keras", "stage2.keras")


def load_run(run_dir: os.PathLike | str) -> tuple[dict, keras.Model, keras.Model]:
    """A finished run's config and its two float models."""
    run = Path(run_dir)
    missing = [name for name in RUN_FILES if not (run / name).is_file()]
    if missing:
        raise RunError(f"{run} is not a finished training run: missing {', '.join(missing)} "
                       "(make one with `cxr-train fit DATA_DIR --out RUN_DIR`)")
    config = json.loads((run / "config.json").read_text())
    if "stage1_threshold" not in config:
        raise RunError(f"{run / 'config.json'} has no stage1_threshold: the training run did not finish")
    return (config, keras.models.load_model(run / "stage1.keras", compile=False),
            keras.models.load_model(run / "stage2.keras", compile=False))


def _eval_dir(run: Path, split: str) -> Path:
    """eval/ always means the test split; other splits get eval-<split>/."""
    return run / ("eval" if split == "test" else f"eval-{split}")


def _evaluate(stage1, stage2, pixels, y_true, threshold: float, split: str, run: Path, preset: str,
              batch_size: int) -> dict:
    """The cascade's metrics on one split, written to its eval folder."""
    metrics = evaluate_predictions(y_true, predict(stage1, pixels, batch_size)[:, 1],
                                   predict(stage2, pixels, batch_size), threshold)
    metrics["split"] = split
    write_eval(_eval_dir(run, split), metrics, f"Cascade on the {split} split ({preset})")
    return metrics
