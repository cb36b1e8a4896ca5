"""`cxr-convert RUN_DIR --out BUNDLE_DIR`: convert both stages, check parity, write the bundle.

The bundle is assembled in a temporary folder beside BUNDLE_DIR and renamed into place, so BUNDLE_DIR is
never half-written. A failed gate still writes the bundle, with "deployable": false.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from cxr_edge import __version__
from cxr_edge.atomic import umask_mode
from cxr_edge.bundle.files import FORMAT_VERSION, MANIFEST, OOD_FILE, SELFTEST_FILE, sha256_bytes
from cxr_edge.inputs.images import IMAGE_CONTRACT_VERSION, RESIZE_FILTER
from cxr_edge.labels import LABELS, STAGE1_LABELS, STAGE2_LABELS
from cxr_edge.models.interpreter import TFLiteModel
from cxr_train.data import label_indices, load_pixels
from cxr_train.dataset import DatasetError, read_split, scan, select
from cxr_train.fit import RunError, load_run

from cxr_edge.site.gate import BOOTSTRAP_SAMPLES, Limits, evaluate_gate
from .parity import cascade_labels, compare, image_sources, parity_markdown, predict_keras, predict_tflite
from .reliability import model_reliability, reliability_png
from .selftest import make_selftest
from .tflite import convert, debug_quantization

OOD_SAMPLES = 2000  # images per split for the out-of-distribution statistics: enough for a 32-d covariance
PARITY_SPLITS = ("val+test", "test", "val")  # neither trains the weights; int8 calibration draws from train


class ConvertError(ValueError):
    """A run folder that cannot be converted; the message says what is missing."""


@dataclass
class ConvertOptions:
    quantization: str = "int8"
    calibration_samples: int = 300
    limits: Limits = field(default_factory=Limits)
    data_dir: str | None = None
    debug_quantization: bool = False
    min_confidence: float = 0.6
    seed: int = 0
    parity_split: str = "val+test"
    parity_data: str | None = None  # a labelled folder whose images join the parity set
    bootstrap_samples: int = BOOTSTRAP_SAMPLES
    search: bool = False  # search candidates on the validation images; the verdict on the test images


def stratified_sample(records, n: int, seed: int) -> list:
    """Up to n records, drawn evenly across the four classes."""
    rng = np.random.default_rng(seed)
    per_class = max(1, n // len(LABELS))
    chosen = []
    for label in LABELS:
        pool = [r for r in records if r.label == label]
        take = rng.permutation(len(pool))[:per_class]
        chosen += [pool[i] for i in sorted(take)]
    return chosen[:n]


def calibration_set(records, data_dir, size: int, n: int, seed: int) -> np.ndarray:
    """Up to n training images, drawn evenly across the four classes, decoded with the image contract."""
    return load_pixels(data_dir, stratified_sample(records, n, seed), size)


def with_features(model: keras.Model) -> keras.Model:
    """Stage 1 with a second output for the box's out-of-distribution score: the penultimate features and,
    as in Lee et al.'s feature ensemble, an early layer's activations (relu2), which keep the low-level
    statistics (contrast polarity, edge orientation) that the last layers learn to ignore. relu2 is averaged
    over the four quadrants rather than the whole image, so that the layout (lungs left and right, abdomen
    below) counts too: with one global average, rotated radiographs passed for upright ones 12-14% of the time.
    A model without those layers is returned as it is."""
    try:
        penultimate = model.get_layer("features").output
        early = model.get_layer("relu2").output
    except ValueError:
        return model
    feats = keras.layers.Concatenate(name="ood_features")([_quadrant_means(early), penultimate])
    return keras.Model(model.input, [model.output, feats], name=model.name)


def _quadrant_means(x):
    """(N, h, w, c) -> (N, 4c): the mean over each quadrant (overlapping by a row or column when h or w is
    odd); plain average pooling, which int8 TFLite runs as it is. Maps too small to split are averaged whole."""
    h, w = x.shape[1], x.shape[2]
    if h < 2 or w < 2:
        return keras.layers.GlobalAveragePooling2D(name="ood_pool2")(x)
    pool = (-(-h // 2), -(-w // 2))
    pooled = keras.layers.AveragePooling2D(pool, strides=(h - pool[0], w - pool[1]), name="ood_pool2")(x)
    return keras.layers.Flatten(name="ood_quadrants")(pooled)


def parity_records(records, options: ConvertOptions, log) -> dict[str, tuple[str, list]]:
    """The parity set's parts, each (its data folder, its records): the run's held-out split(s) and the
    images of --parity-data, less any that are exact copies of a training image."""
    if options.parity_split not in PARITY_SPLITS:
        raise ConvertError(f"--parity-split {options.parity_split!r}: choose one of {', '.join(PARITY_SPLITS)}")
    splits = options.parity_split.split("+")
    if options.search:  # the search chooses on the validation images: the verdict must come from others
        if "test" not in splits:
            raise ConvertError("--search chooses on the validation images, so its verdict needs the test split: "
                               "leave out --parity-split val (the default val+test then means: search on val, "
                               "judge on test)")
        splits = ["test"]
    parts = {split: (None, select(records, split)) for split in splits}
    if options.parity_data:
        found = scan(options.parity_data)
        for problem in found.unreadable:
            log(f"--parity-data: left out {problem}")
        seen = {r.sha256 for r in select(records, "train")}
        extra = [r for r in found.records if r.sha256 not in seen]
        if len(extra) < len(found.records):
            log(f"--parity-data: left out {len(found.records) - len(extra)} exact copies of training images")
        if options.search:
            chosen_on = {r.sha256 for r in select(records, "val")}
            kept = [r for r in extra if r.sha256 not in chosen_on]
            if len(kept) < len(extra):
                log(f"--parity-data: left out {len(extra) - len(kept)} exact copies of validation images "
                    "(the search chose on them)")
            extra = kept
        parts["parity_data"] = (options.parity_data, extra)
    return parts


def _part(parts: dict, name: str) -> slice:
    """Where part `name` lies in the parity set, the parts concatenated in order."""
    sizes = [len(y) for _, y in parts.values()]
    start = sum(sizes[:list(parts).index(name)])
    return slice(start, start + len(parts[name][1]))


def _ood(stage1_int8: bytes, records, data_dir, size: int, test_pixels, seed: int, log) -> tuple[dict, bytes]:
    """Fit the statistics on training images, the threshold on validation images, and measure both kinds
    of error: radiographs wrongly referred (test split) and unlike images let through, by kind."""
    from cxr_edge.models.ood import OODStats, to_bytes

    from . import ood

    train = stratified_sample(select(records, "train"), OOD_SAMPLES, seed)
    val = stratified_sample(select(records, "val"), OOD_SAMPLES, seed)
    log(f"out-of-distribution statistics from {len(train)} training and {len(val)} validation images")
    stats = ood.fit(ood.features(stage1_int8, load_pixels(data_dir, train, size)), label_indices(train))
    limit = ood.threshold(stats, ood.features(stage1_int8, load_pixels(data_dir, val, size)))
    scorer = OODStats(stats, limit)
    in_dist = scorer.score(ood.features(stage1_int8, test_pixels))
    unlike = ood.unlike_images(test_pixels, 50, size, seed)
    referred = {kind: float((scorer.score(ood.features(stage1_int8, images)) > limit).mean())
                for kind, images in unlike.items()}
    info = {"file": OOD_FILE, "stage": "stage1", "method": "mahalanobis-pca", "components": int(stats["components"].shape[1]),
            "threshold": limit, "percentile": ood.PERCENTILE,
            "figures": {"test_radiographs_wrongly_referred": float((in_dist > limit).mean()),
                        "test_radiographs": int(len(in_dist)), "unlike_images_referred": referred,
                        "unlike_images_per_kind": 50}}
    return info, to_bytes(stats)


def _load_run(run: Path) -> tuple[dict, keras.Model, keras.Model, list]:
    try:
        config, stage1, stage2 = load_run(run)
    except RunError as exc:
        raise ConvertError(str(exc)) from None
    return config, stage1, stage2, read_split(run / "split.csv")


def _summary(metrics: dict) -> dict:
    c = metrics["cascade"]
    return {"accuracy": c["accuracy"], "macro_f1": c["macro_f1"], "agreement": c["agreement"],
            "f1": {label: c["per_class"][label]["f1"] for label in LABELS},
            "stage1_accuracy": metrics["stage1"]["accuracy"], "stage2_accuracy": metrics["stage2"]["accuracy"]}


def build_bundle(run_dir: os.PathLike | str, out: os.PathLike | str, options: ConvertOptions,
                 calibration: np.ndarray | None = None, log=print) -> dict:
    """Convert, check and write the bundle; returns the manifest. `calibration` overrides the drawn set."""
    run, out = Path(run_dir), Path(out)
    if options.search and options.quantization != "int8":
        raise ConvertError("--search chooses the quantization itself: leave out --quantization")
    config, stage1, stage2, records = _load_run(run)
    data_dir = options.data_dir or config["data_dir"]
    if not Path(data_dir).is_dir():
        raise ConvertError(f"the run's images are not at {data_dir}: pass --data DIR where they are now")
    size, threshold = int(config["image_size"]), float(config["stage1_threshold"])
    try:
        if calibration is None:
            calibration = calibration_set(select(records, "train"), data_dir, size, options.calibration_samples,
                                          options.seed)
        verdict_records = parity_records(records, options, log)
        parts = {name: (load_pixels(folder or data_dir, part, size), label_indices(part))
                 for name, (folder, part) in verdict_records.items()}
        test_pixels = parts["test"][0] if "test" in parts else load_pixels(data_dir, select(records, "test"), size)
    except DatasetError as exc:
        raise ConvertError(str(exc)) from None
    pixels = np.concatenate([p for p, _ in parts.values()])
    y_true = np.concatenate([y for _, y in parts.values()])
    images = {"split": "test" if options.search else options.parity_split, "parity_data": options.parity_data,
              "counts": {name: len(y) for name, (_, y) in parts.items()}}
    if options.search:  # which images chose and which judged, so that anyone can check they differ
        images["files"] = {name: [r.path for r in part] for name, (_, part) in verdict_records.items()}

    start = time.perf_counter()
    log(f"converting both stages to TFLite float32 and {'candidates' if options.search else options.quantization} "
        f"({len(calibration)} calibration images)")
    deployed = (("stage1", with_features(stage1)), ("stage2", stage2))
    float32 = {s: convert(m, "float32") for s, m in deployed}
    search_report = None
    if options.search:
        searched = _search(dict(deployed), float32, calibration, stage1, stage2, threshold, records, data_dir, size,
                           options, log)
        quantized, quantization, search_report = searched.models, searched.quantization, searched.report
    else:
        quantization = options.quantization
        quantized = float32 if quantization == "float32" else {
            s: convert(m, quantization, calibration) for s, m in deployed}
    log(f"parity check on {len(y_true)} held-out images ({image_sources(images)})")
    reference = predict_keras(stage1, stage2, pixels)
    deployed_pred = predict_tflite(quantized["stage1"], quantized["stage2"], pixels)
    models = {"keras_float": compare(y_true, threshold, reference, reference),
              "tflite_float32": compare(y_true, threshold, reference, predict_tflite(float32["stage1"], float32["stage2"], pixels)),
              "quantized": compare(y_true, threshold, reference, deployed_pred)}
    gate = evaluate_gate(y_true, cascade_labels(reference, threshold), cascade_labels(deployed_pred, threshold),
                         options.limits, options.bootstrap_samples, options.seed, quantization)
    if search_report is not None and not search_report["found"]:  # a pass here would be chosen on the test images
        gate.update(passed=False, search_found=False, failures=[*gate["failures"], (
            f"no candidate of the {search_report['candidates_tried']} the search judged passed on the validation "
            f"images; this bundle holds the best, {search_report['chosen']}, for inspection only")])
    calibration_figures = {"float": model_reliability(y_true, threshold, reference),
                           "quantized": model_reliability(y_true, threshold, deployed_pred)}
    parity = {"quantization": quantization, "n_images": len(y_true), "images": images,
              "threshold": threshold, "models": models, "gate": gate, "calibration": calibration_figures}
    test_flagged = (deployed_pred.p_abnormal[_part(parts, "test")] if "test" in parts else
                    predict_tflite(quantized["stage1"], quantized["stage2"], test_pixels).p_abnormal) >= threshold
    extra_files = {}
    if deployed[0][1] is not stage1:
        parity["ood"], extra_files[OOD_FILE] = _ood(quantized["stage1"], records, data_dir, size, test_pixels,
                                                    options.seed, log)
    if search_report is not None:
        parity["search"] = search_report
    if options.debug_quantization and options.quantization == "int8":
        log("running TensorFlow's quantization debugger (per-layer error)")
        parity["layer_errors"] = {s: debug_quantization(m, calibration) for s, m in (("stage1", stage1), ("stage2", stage2))}

    manifest = {
        "format_version": FORMAT_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cxr_edge_version": __version__, "labels": list(LABELS),
        "stages": {"stage1": {"file": "stage1.tflite", "labels": list(STAGE1_LABELS), "output": "softmax",
                              "applies_to": "every image"},
                   "stage2": {"file": "stage2.tflite", "labels": list(STAGE2_LABELS), "output": "softmax",
                              "applies_to": "images at or above stage1_threshold for abnormal"}},
        "input": {"size": size, "channels": 1, "dtype": TFLiteModel(quantized["stage1"]).input.dtype.name,
                  "pixels": "raw grayscale 0..255; the model scales them itself"},
        "image_contract": {"version": IMAGE_CONTRACT_VERSION, "resize_filter": RESIZE_FILTER},
        "quantization": quantization, "stage1_threshold": threshold,
        "target_sensitivity": config.get("target_sensitivity"), "min_confidence": options.min_confidence,
        "training_data": {"name": config.get("data_name"), "synthetic": bool(config.get("synthetic")),
                          "counts": config.get("counts")},
        "run": {"preset": config.get("preset"), "seed": config.get("seed"), "run_dir": str(run.resolve()),
                "trained_on": config.get("parallel")},
        "metrics": {"float": _summary(models["keras_float"]), "quantized": _summary(models["quantized"])},
        "parity_gate": parity["gate"], "deployable": gate["passed"],
        # what a run on the box is compared with when no site file says otherwise (cxr_edge.site.site_file.monitor)
        "expected": {"flagged_abnormal": float(test_flagged.mean()), "split": "test", "images": len(test_flagged)},
    }
    if "ood" in parity:
        manifest["ood"] = parity["ood"]
    if search_report is not None:
        chosen = next(c for c in search_report["candidates"] if c["name"] == search_report["chosen"])
        manifest["search"] = {"chosen": chosen["name"], "found": search_report["found"],
                              "candidates_tried": search_report["candidates_tried"], "layers": chosen["layers"],
                              "calibration": chosen["calibration"]}
    log("self-test: reference inputs and the converted models' outputs for them")
    model_files = {f"{s}.tflite": data for s, data in quantized.items()}
    manifest = write_bundle(out, {**model_files, **extra_files}, manifest,
                            {"parity.json": json.dumps(parity, indent=2) + "\n", "parity.md": parity_markdown(parity),
                             "reliability.png": reliability_png(calibration_figures)})
    log(f"conversion and parity check took {time.perf_counter() - start:.1f} s")
    return manifest


def _search(deployed: dict, float32: dict, calibration, stage1, stage2, threshold: float, records, data_dir,
            size: int, options: ConvertOptions, log):
    """The search's candidates judged on the validation images (cxr_convert.search)."""
    from . import search

    val = select(records, "val")
    if not val:
        raise ConvertError("--search chooses on the run's validation images, and its split has none: convert "
                           "without --search, or train with a validation split (--val-fraction)")
    try:
        pixels = load_pixels(data_dir, val, size)
    except DatasetError as exc:
        raise ConvertError(str(exc)) from None
    log(f"searching for a quantization that passes on the {len(val)} validation images")
    selection = search.Selection(pixels, label_indices(val), predict_keras(stage1, stage2, pixels), threshold,
                                 options.limits, options.bootstrap_samples, options.seed, [r.path for r in val])
    more = lambda: calibration_set(select(records, "train"), data_dir, size,  # noqa: E731
                                   search.MORE_CALIBRATION * len(calibration), options.seed)
    return search.run(deployed, float32, calibration, more, selection, log)


def write_bundle(out: os.PathLike | str, models: dict[str, bytes], manifest: dict,
                 extras: dict[str, str | bytes] | None = None) -> dict:
    """Write a bundle folder: the models (and data files), the self-test made from the models, the manifest
    with every file's size and sha256, and any extra files. Every bundle carries its self-test."""
    selftest, description = make_selftest(models, int(manifest["input"]["size"]))
    models = {**models, SELFTEST_FILE: selftest}
    manifest = {**manifest, "selftest": description,
                "files": {name: {"size": len(data), "sha256": sha256_bytes(data)} for name, data in models.items()}}
    _write_atomically(Path(out), {**models, MANIFEST: json.dumps(manifest, indent=2) + "\n", **(extras or {})})
    return manifest


def _write_atomically(out: Path, contents: dict[str, bytes | str]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    os.chmod(staging, umask_mode(0o777))
    for name, data in contents.items():
        (staging / name).write_bytes(data.encode() if isinstance(data, str) else data)
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
