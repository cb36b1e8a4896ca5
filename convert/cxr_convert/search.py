"""`cxr-convert --search`: quantization candidates in order of their cost on the box, each judged by the parity
gate on the validation images, stopping at the first that passes.

The order: full int8 as today; int8 with more calibration images and with other range algorithms; int8 with the
layers the quantization debugger finds worst kept out of int8 (float16 weights and float arithmetic, then int16
activations), one more layer at a time; last, float16 and float32. Trying many variants on one set of images turns
the gate into a search target (one passes by chance), so the search sees the validation images only, and the
chosen candidate's verdict is measured afterwards on the test images, which no choice depended on (bundle.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from cxr_edge.models.interpreter import TFLiteModel
from cxr_edge.run.bench import per_image_ms
from cxr_edge.site.gate import PASS, evaluate_gate

from . import precision
from .parity import Predictions, cascade_labels, predict_tflite
from .tflite import convert, debug_quantization

MORE_CALIBRATION = 4  # "more calibration images": this many times --calibration-samples
MAX_LAYERS = 8  # the debugger's worst layers the search takes out of int8, one more at a time
TIMED_IMAGES = 50  # batch-1 inferences behind each candidate's time per image (as `make bench`)
STAGES = ("stage1", "stage2")


@dataclass
class Candidate:
    name: str
    quantization: str  # the manifest's word: int8, int8+float16, int8+int16, float16 or float32
    build: Callable[[], dict[str, bytes]]  # the two stages' .tflite bytes
    layers: list[dict] = field(default_factory=list)  # [{"stage", "layer", "precision"}], the layers out of int8
    calibration: str = ""


@dataclass
class Selection:
    """What candidates are judged on: the validation images, the float models' answers, the gate's settings."""
    pixels: np.ndarray
    y_true: np.ndarray
    reference: Predictions
    threshold: float
    limits: object
    bootstrap_samples: int
    seed: int
    files: list[str]


@dataclass
class SearchResult:
    models: dict[str, bytes]
    quantization: str
    passed: bool
    report: dict


def candidates(deployed: dict, float32: dict[str, bytes], calibration: np.ndarray,
               more_calibration: Callable[[], np.ndarray], log) -> Iterator[Candidate]:
    """The candidates, cheapest on the box first. The debugger runs only when the int8 variants have all failed."""
    n = len(calibration)
    yield Candidate("int8", "int8", lambda: {s: convert(m, "int8", calibration) for s, m in deployed.items()},
                    calibration=f"{n} images, min-max ranges (TensorFlow's converter)")
    more = more_calibration()
    if len(more) > n:
        yield Candidate(f"int8, {len(more)} calibration images", "int8",
                        lambda: {s: convert(m, "int8", more) for s, m in deployed.items()},
                        calibration=f"{len(more)} images, min-max ranges (TensorFlow's converter)")
    for name, recipe in (("int8, moving-average ranges", precision.Recipe("moving-average")),
                         ("int8, MSE weight ranges", precision.Recipe(weight_ranges="mse"))):
        yield Candidate(name, "int8", lambda r=recipe: _quantize(float32, calibration, {s: r for s in STAGES}),
                        calibration=f"{n} images, {recipe.activation_ranges} activation ranges, "
                                    f"{recipe.weight_ranges} weight ranges (ai-edge-quantizer)")
    log("ranking the layers by the quantization debugger's per-layer error")
    kept_before: set = set()
    for k, layers in enumerate(_layers_out_of_int8(deployed, float32, calibration), start=1):
        if layers == kept_before:
            continue  # the next layer was already out of int8, as an input of one before it
        kept_before = layers
        for layer_precision in precision.LAYER_PRECISIONS:
            recipes = {s: precision.Recipe(layers={name: layer_precision for stage, name in layers if stage == s})
                       for s in STAGES}
            named = "layer" if k == 1 else "layers"
            yield Candidate(f"int8, worst {k} {named} {layer_precision}", f"int8+{layer_precision}",
                            lambda r=recipes: _quantize(float32, calibration, r),
                            [{"stage": s, "layer": name, "precision": layer_precision} for s, name in sorted(layers)],
                            f"{n} images, min-max ranges (ai-edge-quantizer)")
    yield Candidate("float16", "float16", lambda: {s: convert(m, "float16") for s, m in deployed.items()})
    yield Candidate("float32", "float32", lambda: dict(float32))


def _quantize(float32: dict[str, bytes], calibration: np.ndarray, recipes: dict) -> dict[str, bytes]:
    return {s: precision.quantize(float32[s], calibration, recipes[s]) for s in STAGES}


def ranked_layers(deployed: dict, float32: dict[str, bytes], calibration: np.ndarray) -> list[tuple[float, str, str]]:
    """(per-layer mean squared error, stage, layer name), worst first, for the layers of the float32 models."""
    rows = []
    for stage, model in deployed.items():
        names = {op.name for op in precision.graph(float32[stage])}
        with warnings.catch_warnings():  # TensorFlow's debugger runs tf.lite.Interpreter, which warns it is deprecated
            warnings.simplefilter("ignore")
            errors = debug_quantization(model, calibration)
        rows += [(float(r.get("mean_squared_error") or 0), stage, r["tensor_name"])
                 for r in errors if r.get("tensor_name") in names]
    return sorted(rows, key=lambda r: -r[0])


def _layers_out_of_int8(deployed, float32, calibration) -> Iterator[set[tuple[str, str]]]:
    """The growing sets of (stage, layer) out of int8: the worst layer with its inputs' layers, then the next."""
    graphs = {s: precision.graph(float32[s]) for s in STAGES}
    kept: set = set()
    for _, stage, name in ranked_layers(deployed, float32, calibration)[:MAX_LAYERS]:
        kept |= {(stage, layer) for layer in precision.with_inputs(graphs[stage], name)}
        yield set(kept)


def run(candidate_list: Iterator[Candidate], selection: Selection, float32: dict[str, bytes], log) -> SearchResult:
    """Judge candidates in order on the validation images until one passes; the best one if none does."""
    start = time.perf_counter()
    tried, chosen, best = [], None, None
    labels = cascade_labels(selection.reference, selection.threshold)
    for number, candidate in enumerate(candidate_list, start=1):
        log(f"candidate {number}: {candidate.name}")
        try:
            models = candidate.build()
        except ValueError as exc:  # a recipe ai-edge-quantizer cannot apply: say so, go on
            tried.append({**_describe(candidate), "skipped": str(exc)})
            log(f"  skipped: {exc}")
            continue
        predictions = predict_tflite(models["stage1"], models["stage2"], selection.pixels)
        gate = evaluate_gate(selection.y_true, labels, cascade_labels(predictions, selection.threshold),
                             selection.limits, selection.bootstrap_samples, selection.seed, candidate.name)
        entry = {**_describe(candidate), "validation": _summary(gate), "cost": cost(models, selection.pixels)}
        tried.append(entry)
        log(f"  {gate['verdict']} on {len(selection.y_true)} validation images; "
            f"{entry['cost']['ms_per_image']} ms per image, {entry['cost']['size_bytes']:,} bytes")
        if gate["verdict"] == PASS:
            chosen = (candidate, models, entry)
            break
        if best is None or _better(entry, best[2]):
            best = (candidate, models, entry)
    found = chosen is not None
    candidate, models, entry = chosen if found else best
    report = {"candidates_tried": len(tried), "found": found, "chosen": candidate.name,
              "seconds": round(time.perf_counter() - start, 1), "candidates": tried,
              "float32_cost": cost(float32, selection.pixels),
              "images": {"split": "val", "count": len(selection.files), "files": selection.files}}
    return SearchResult(models, candidate.quantization, found, report)


def _describe(candidate: Candidate) -> dict:
    return {"name": candidate.name, "quantization": candidate.quantization, "calibration": candidate.calibration,
            "layers": candidate.layers}


def _summary(gate: dict) -> dict:
    checks = [{k: c[k] for k in ("name", "estimate", "low", "high", "limit", "verdict")} for c in gate["checks"]]
    return {"verdict": gate["verdict"], "checks": checks, "failures": gate["failures"]}


def _better(entry: dict, best: dict) -> bool:
    """More checks passed, then a smaller accuracy drop: the candidate to report when none passes."""
    def score(e):
        checks = e["validation"]["checks"]
        return (sum(c["verdict"] == PASS for c in checks), -checks[0]["estimate"])
    return score(entry) > score(best)


_MEMORY_CHILD = """
import sys, numpy as np
from cxr_edge.models.interpreter import TFLiteModel
from cxr_edge.run.bench import peak_memory_mb
models = [TFLiteModel(open(p, "rb").read(), threads=1) for p in sys.argv[2:]]
for m in models:
    m.predict(np.zeros((1, int(sys.argv[1]), int(sys.argv[1]), 1), np.uint8))
print(peak_memory_mb())
"""


def cost(models: dict[str, bytes], pixels: np.ndarray) -> dict:
    """Size of both stages, milliseconds per image at batch 1 through both (as `make bench` times int8), and the
    peak memory of a fresh process that loads both and classifies one image."""
    loaded = [TFLiteModel(models[s]) for s in STAGES]
    sample = [image[np.newaxis] for image in pixels[:TIMED_IMAGES]]
    ms = per_image_ms(lambda x: [m.predict(x) for m in loaded], sample)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for s in STAGES:
            paths.append(Path(tmp) / f"{s}.tflite")
            paths[-1].write_bytes(models[s])
        out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(pixels.shape[1]), *map(str, paths)],
                             capture_output=True, text=True, check=True).stdout
    return {"size_bytes": sum(len(models[s]) for s in STAGES), "ms_per_image": round(ms, 3),
            "peak_memory_mb": json.loads(out.strip().splitlines()[-1])}


def search_markdown(report: dict, verdict_images: str) -> list[str]:
    """parity.md's search section: every candidate tried, its verdict on the validation images and its cost."""
    f32 = report["float32_cost"]
    lines = ["## Quantization search", "",
             f"{report['candidates_tried']} candidates tried in {report['seconds']:g} s, in order of cost on the box, "
             f"each judged by the gate on the {report['images']['count']} validation images only. "
             + (f"Chosen: **{report['chosen']}**, the first to pass. " if report["found"] else
                f"**None passed**: the best, {report['chosen']}, is written below, NOT DEPLOYABLE. ")
             + f"The verdict below was measured on {verdict_images}, which no choice depended on.", "",
             "| # | candidate | layers out of int8 | validation verdict | accuracy drop (95% interval) | size | "
             "ms per image | peak memory |", "|---|---|---|---|---|---|---|---|"]
    for i, c in enumerate(report["candidates"], start=1):
        layers = ", ".join(f"{x['stage']} {x['layer']}" for x in c["layers"]) or "none"
        if "skipped" in c:
            lines.append(f"| {i} | {c['name']} | {layers} | skipped: {c['skipped']} | | | | |")
            continue
        acc, cost_ = c["validation"]["checks"][0], c["cost"]
        lines.append(f"| {i} | {c['name']} | {layers} | {c['validation']['verdict']} | {acc['estimate']:+.4f} "
                     f"({acc['low']:+.4f} to {acc['high']:+.4f}) | {cost_['size_bytes']:,} B | "
                     f"{cost_['ms_per_image']:.2f} | {cost_['peak_memory_mb']:.0f} MB |")
    lines.append(f"| | float32 (for scale) | all | | | {f32['size_bytes']:,} B | {f32['ms_per_image']:.2f} | "
                 f"{f32['peak_memory_mb']:.0f} MB |")
    chosen = next(c for c in report["candidates"] if c["name"] == report["chosen"])
    int8 = report["candidates"][0]
    if "cost" in int8 and chosen is not int8:
        ratio = lambda key, other: chosen["cost"][key] / other[key]  # noqa: E731
        lines += ["", f"The chosen candidate against full int8 and float32, measured in this run on this machine: "
                      f"size x{ratio('size_bytes', int8['cost']):.2f} and x{ratio('size_bytes', f32):.2f}, "
                      f"time per image x{ratio('ms_per_image', int8['cost']):.2f} and "
                      f"x{ratio('ms_per_image', f32):.2f}."]
    return lines + [""]
