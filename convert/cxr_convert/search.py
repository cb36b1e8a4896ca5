"""`cxr-convert --search`: quantization candidates, cheapest first, each judged by the parity gate on the
validation images, stopping at the first that passes.

First full int8 (the cheapest kind): as today, with more calibration images, with other range algorithms. Then the
quantization debugger's worst layers out of int8, one more at a time, each set as twins (float arithmetic with
float16 weights, int16 activations), the one measured faster judged first; an int16 twin slower than whole-model
float is not judged. Last float16 and float32. Trying many variants on one set of images turns the gate into a
search target (one passes by chance), so the search sees the validation images only, and the chosen candidate's
verdict is measured afterwards on the test images, which no choice depended on (bundle.py).
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
from cxr_edge.site.gate import PASS, Limits, evaluate_gate

from . import precision
from .parity import Predictions, cascade_labels, predict_tflite
from .tflite import convert, debug_quantization

MORE_CALIBRATION = 4  # "more calibration images": this many times --calibration-samples
MAX_LAYERS = 8  # the debugger's worst layers the search takes out of int8, one more at a time
TIMED_IMAGES = 50  # batch-1 inferences behind each candidate's time per image (as `make bench`)
STAGES = ("stage1", "stage2")
# Times within this share of each other are a tie, and the earlier candidate (float16 before int16) goes first: 20
# timings of one hand-set model here spread by 0.23-0.24 of their median ((max - min) / median).
TIME_TIE = 0.25


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
    limits: Limits
    bootstrap_samples: int
    seed: int
    files: list[str]


@dataclass
class SearchResult:
    models: dict[str, bytes]
    quantization: str
    report: dict  # "found": whether a candidate passed on the validation images


def int8_candidates(deployed: dict, float32: dict[str, bytes], calibration: np.ndarray,
                    more_calibration: Callable[[], np.ndarray]) -> Iterator[Candidate]:
    """Full int8, the cheapest kind on the box: as today, then with more calibration images and other ranges."""
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


def layer_candidates(deployed: dict, float32: dict[str, bytes], calibration: np.ndarray,
                     log) -> Iterator[list[Candidate]]:
    """Twins (float16, int16) for the debugger's worst layers out of int8, one more layer at a time."""
    kept_before: set = set()
    for k, layers in enumerate(layers_out_of_int8(deployed, float32, calibration, log), start=1):
        if layers == kept_before:
            continue  # the next layer was already out of int8, as an input of one before it
        kept_before = layers
        twins = []
        for layer_precision in precision.LAYER_PRECISIONS:
            recipes = {s: precision.Recipe(layers={name: layer_precision for stage, name in layers if stage == s})
                       for s in STAGES}
            named = "layer" if k == 1 else "layers"
            twins.append(Candidate(f"int8, worst {k} {named} {layer_precision}", f"int8+{layer_precision}",
                                   lambda r=recipes: _quantize(float32, calibration, r),
                                   [{"stage": s, "layer": name, "precision": layer_precision}
                                    for s, name in sorted(layers)],
                                   f"{len(calibration)} images, min-max ranges (ai-edge-quantizer)"))
        yield twins


def float_candidates(deployed: dict, float32: dict[str, bytes]) -> list[Candidate]:
    return [Candidate("float16", "float16", lambda: {s: convert(m, "float16") for s, m in deployed.items()}),
            Candidate("float32", "float32", lambda: dict(float32))]


def _quantize(float32: dict[str, bytes], calibration: np.ndarray, recipes: dict) -> dict[str, bytes]:
    return {s: precision.quantize(float32[s], calibration, recipes[s]) for s in STAGES}


def ranked_layers(deployed: dict, float32: dict[str, bytes], calibration: np.ndarray) -> list[tuple[float, str, str]]:
    """(error, stage, layer name), worst first, for the float32 models' layers that lead to the class
    probabilities (not those that feed only the out-of-distribution features, which the gate cannot see).
    The error is the debugger's per-layer root mean squared error in steps of the layer's int8 scale, as
    TensorFlow's guide to the debugger reads it (about 0.29, 1/sqrt(12), is rounding alone): a raw squared
    error would rank layers by the size of their values."""
    rows = []
    for stage, model in deployed.items():
        ops = precision.graph(float32[stage])
        probabilities = [op.name for op in ops if op.kind == "SOFTMAX"][-1]
        names = {op.name for op in ops if op.computes_float} & precision.upstream(ops, probabilities)
        with warnings.catch_warnings():  # TensorFlow's debugger runs tf.lite.Interpreter, which warns it is deprecated
            warnings.simplefilter("ignore")
            errors = debug_quantization(model, calibration)
        rows += [(_steps(r), stage, r["tensor_name"]) for r in errors if r.get("tensor_name") in names]
    return sorted(rows, key=lambda r: -r[0])


def _steps(row: dict) -> float:
    rmse = float(row.get("mean_squared_error") or 0) ** 0.5
    scale = float(row.get("scale") or 0)
    return rmse / scale if scale > 0 else rmse


def layers_out_of_int8(deployed, float32, calibration, log=print) -> Iterator[set[tuple[str, str]]]:
    """The growing sets of (stage, layer) out of int8: the worst layer with its inputs' layers, then the next."""
    graphs = {s: precision.graph(float32[s]) for s in STAGES}
    kept: set = set()
    ranked = ranked_layers(deployed, float32, calibration)
    if not ranked:  # the debugger names tensors as the converter does; should that change, say so
        log("  the debugger's layers match none of the float32 models': no layer can be kept out of int8")
    for _, stage, name in ranked[:MAX_LAYERS]:
        kept |= {(stage, layer) for layer in precision.with_inputs(graphs[stage], name)}
        yield set(kept)


def run(deployed: dict, float32: dict[str, bytes], calibration: np.ndarray,
        more_calibration: Callable[[], np.ndarray], selection: Selection, log) -> SearchResult:
    """Judge the int8 candidates in order; if none passes, the layer candidates, then float16 and float32, until
    one passes on the validation images. The result is the best candidate when none does."""
    start, judge, float32_cost = time.perf_counter(), _Judge(selection, log), None
    for candidate in int8_candidates(deployed, float32, calibration, more_calibration):
        if judge.judge(candidate, _build(candidate, judge, log)) or judge.hopeless:
            break
    else:
        float32_cost = _wider(deployed, float32, calibration, judge, log)
    found = judge.chosen is not None
    candidate, models, _ = judge.chosen if found else judge.best
    report = {"candidates_tried": sum(e["judged"] for e in judge.entries), "found": found,
              "chosen": candidate.name, "seconds": round(time.perf_counter() - start, 1),
              "candidates": judge.entries, "float32_cost": float32_cost or cost(float32, selection.pixels),
              "images": {"split": "val", "count": len(selection.files), "files": selection.files}}
    return SearchResult(models, candidate.quantization, report)


def _wider(deployed, float32, calibration, judge: "_Judge", log) -> dict:
    """The layer candidates group by group, the twin measured faster first (float16 on a tie), then float16 and
    float32 by time. An int16 twin slower than whole-model float is not judged: float passes wherever it does, and
    costs less. int16 can cost far more: on alexnet-edge here, int16 activations on the first convolution made the
    model 50 times slower than int8 (XNNPACK has no int16 kernels, nor on the Pi) where float16 made it faster
    (python -m benchmarks.search_costs). A float16 twin is judged whatever its time: its float arithmetic is part of
    whole-model float's, and on models as small as the tests' every time is overhead and noise. Returns the
    float32 model's cost, measured on the way."""
    pixels = judge.selection.pixels
    fallback = [(cost(models, pixels), c, models) for c in float_candidates(deployed, float32)
                if (models := _build(c, judge, log)) is not None]
    ceiling = min(b[0]["ms_per_image"] for b in fallback) * (1 + TIME_TIE)
    log("ranking the layers by the quantization debugger's per-layer error")
    for group in layer_candidates(deployed, float32, calibration, log):
        built = [(cost(models, pixels), c, models) for c in group if (models := _build(c, judge, log)) is not None]
        for measured, candidate, models in _cheapest_first(built):
            if candidate.quantization == "int8+int16" and measured["ms_per_image"] > ceiling:
                judge.pass_over(candidate, measured, "slower than whole-model float")
            elif judge.chosen is None:
                judge.judge(candidate, models, measured)
            else:
                judge.pass_over(candidate, measured, "its faster twin passed")
        if judge.chosen is not None:
            break
    else:
        for measured, candidate, models in _cheapest_first(fallback):
            if judge.chosen is None:
                judge.judge(candidate, models, measured)
    return next(measured for measured, candidate, _ in fallback if candidate.quantization == "float32")


def _cheapest_first(built: list) -> Iterator:
    """(cost, candidate, models) by time per image, a tie (within TIME_TIE) going to the one built first."""
    remaining = list(built)
    while remaining:
        fastest = min(b[0]["ms_per_image"] for b in remaining)
        pick = next(b for b in remaining if b[0]["ms_per_image"] <= fastest * (1 + TIME_TIE))
        remaining.remove(pick)
        yield pick


# What ai-edge-quantizer raises for a recipe it cannot apply to a model; one candidate's failure skips it only.
QUANTIZER_ERRORS = (ValueError, KeyError, RuntimeError, NotImplementedError)


def _build(candidate: Candidate, judge: "_Judge", log) -> dict[str, bytes] | None:
    log(f"candidate: {candidate.name}")
    try:
        return candidate.build()
    except QUANTIZER_ERRORS as exc:
        judge.entries.append({**_describe(candidate), "skipped": f"{type(exc).__name__}: {exc}", "judged": False})
        log(f"  skipped: {exc}")
        return None


class _Judge:
    """The gate on the validation images, candidate by candidate; keeps the report's entries and the best so far."""

    def __init__(self, selection: Selection, log):
        self.selection, self.log = selection, log
        self.labels = cascade_labels(selection.reference, selection.threshold)
        self.entries: list[dict] = []
        self.chosen = self.best = None
        self.hopeless = False  # the float model itself is no better than chance: no quantization can pass

    def judge(self, candidate: Candidate, models: dict | None, measured: dict | None = None) -> bool:
        if models is None:
            return False
        sel = self.selection
        predictions = predict_tflite(models["stage1"], models["stage2"], sel.pixels)
        gate = evaluate_gate(sel.y_true, self.labels, cascade_labels(predictions, sel.threshold), sel.limits,
                             sel.bootstrap_samples, sel.seed, candidate.name)
        entry = {**_describe(candidate), "validation": _summary(gate), "cost": measured or cost(models, sel.pixels),
                 "judged": True}
        self.entries.append(entry)
        self.log(f"  {gate['verdict']} on {len(sel.y_true)} validation images; {entry['cost']['ms_per_image']} ms "
                 f"per image, {entry['cost']['size_bytes']:,} bytes")
        self.hopeless = not gate["float_model"]["learned"]
        if gate["passed"]:
            self.chosen = (candidate, models, entry)
        elif self.best is None or _better(entry, self.best[2]):
            self.best = (candidate, models, entry)
        return self.chosen is not None

    def pass_over(self, candidate: Candidate, measured: dict, why: str) -> None:
        self.entries.append({**_describe(candidate), "cost": measured, "judged": False, "not_judged": why})


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
             f"{report['candidates_tried']} candidates judged in {report['seconds']:g} s, each by the gate on the "
             f"{report['images']['count']} validation images only: full int8 first, then layers out of int8, then "
             "float, the faster first where the kind does not settle it (times measured on this machine, not a Pi). "
             + (f"Chosen: **{report['chosen']}**, the first to pass. " if report["found"] else
                f"**None passed**: the best, {report['chosen']}, is written below, NOT DEPLOYABLE. ")
             + f"The verdict below was measured on {verdict_images}, which no choice depended on.", "",
             "| # | candidate | layers out of int8 | validation verdict | accuracy drop (95% interval) | size | "
             "ms per image | peak memory of a process |", "|---|---|---|---|---|---|---|---|"]
    for i, c in enumerate(report["candidates"], start=1):
        layers = ", ".join(f"{x['stage']} {x['layer']}" for x in c["layers"]) or "none"
        if "skipped" in c:
            lines.append(f"| {i} | {c['name']} | {layers} | skipped: {c['skipped']} | | | | |")
            continue
        if not c["judged"]:
            lines.append(f"| {i} | {c['name']} | {layers} | not judged: {c['not_judged']} | | "
                         f"{c['cost']['size_bytes']:,} B | {c['cost']['ms_per_image']:.2f} | "
                         f"{c['cost']['peak_memory_mb']:.0f} MB |")
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
        what = "The chosen candidate" if report["found"] else "The candidate written (not chosen)"
        lines += ["", f"{what} against full int8 and float32, measured in this run on this machine: "
                      f"size x{ratio('size_bytes', int8['cost']):.2f} and x{ratio('size_bytes', f32):.2f}, "
                      f"time per image x{ratio('ms_per_image', int8['cost']):.2f} and "
                      f"x{ratio('ms_per_image', f32):.2f}."]
    return lines + [""]
