"""The float-vs-quantized parity check: float Keras, float32 TFLite and quantized TFLite models on the same
held-out images, for stage 1, stage 2 and the cascade, and the gate that decides `deployable`.

The TFLite models run through cxr_edge's own interpreter code, so the check validates what the box runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxr_edge.labels import LABELS, STAGE1_LABELS, STAGE2_LABELS
from cxr_edge.models.cascade import combine
from cxr_edge.models.interpreter import TFLiteModel, predict_in_batches
from cxr_train.evaluate import classification_metrics

from cxr_edge.site.gate import verdict_line


@dataclass(frozen=True)
class Predictions:
    p_abnormal: np.ndarray  # (N,)
    stage2: np.ndarray  # (N, 3)


def predict_keras(stage1, stage2, pixels: np.ndarray, batch_size: int = 64) -> Predictions:
    from cxr_train.fit import predict

    return Predictions(predict(stage1, pixels, batch_size)[:, 1], predict(stage2, pixels, batch_size))


def predict_tflite(stage1: bytes, stage2: bytes, pixels: np.ndarray, batch_size: int = 32) -> Predictions:
    probs = [predict_in_batches(TFLiteModel(content), pixels, batch_size)[0] for content in (stage1, stage2)]
    return Predictions(probs[0][:, 1], probs[1])


def cascade_labels(predictions: Predictions, threshold: float) -> np.ndarray:
    return combine(predictions.p_abnormal, predictions.stage2, threshold)[0]


def _compare(y_true, y_pred, y_ref, probs, ref_probs, names) -> dict:
    metrics = classification_metrics(y_true, y_pred, names)
    diff = np.abs(np.asarray(probs, np.float64) - np.asarray(ref_probs, np.float64))
    metrics.update(agreement=float((y_pred == y_ref).mean()) if len(y_pred) else None,
                   mean_abs_prob_diff=float(diff.mean()) if diff.size else 0.0,
                   max_abs_prob_diff=float(diff.max()) if diff.size else 0.0)
    return metrics


def compare(y_true: np.ndarray, threshold: float, reference: Predictions, candidate: Predictions) -> dict:
    """Stage 1, stage 2 and cascade metrics of `candidate`, with its agreement with `reference`."""
    abnormal = y_true != 0
    stage1 = _compare(abnormal.astype(int), (candidate.p_abnormal >= threshold).astype(int),
                      (reference.p_abnormal >= threshold).astype(int), candidate.p_abnormal, reference.p_abnormal,
                      STAGE1_LABELS)
    stage2 = _compare(y_true[abnormal] - 1, candidate.stage2[abnormal].argmax(1), reference.stage2[abnormal].argmax(1),
                      candidate.stage2[abnormal], reference.stage2[abnormal], STAGE2_LABELS)
    labels, probs = combine(candidate.p_abnormal, candidate.stage2, threshold)
    ref_labels, ref_probs = combine(reference.p_abnormal, reference.stage2, threshold)
    cascade = _compare(y_true, labels, ref_labels, probs, ref_probs, LABELS)
    return {"stage1": stage1, "stage2": stage2, "cascade": cascade}


def parity_markdown(parity: dict) -> str:
    """parity.md: the three models side by side, deltas against float, then the gate and its verdict."""
    names = ("keras_float", "tflite_float32", "quantized")
    models = parity["models"]
    header = f"| metric | Keras float | TFLite float32 | TFLite {parity['quantization']} | delta (quantized - float) |"
    rows = []

    def row(title, get):
        values = [get(models[n]) for n in names]
        cells = ["n/a" if v is None else f"{v:.4f}" for v in values]
        delta = "n/a" if None in (values[0], values[2]) else f"{values[2] - values[0]:+.4f}"
        rows.append(f"| {title} | " + " | ".join(cells) + f" | {delta} |")

    for stage in ("stage1", "stage2", "cascade"):
        row(f"{stage} accuracy", lambda m, s=stage: m[s]["accuracy"])
        row(f"{stage} macro-F1", lambda m, s=stage: m[s]["macro_f1"])
        row(f"{stage} agreement with float", lambda m, s=stage: m[s]["agreement"])
        row(f"{stage} mean abs prob diff", lambda m, s=stage: m[s]["mean_abs_prob_diff"])
        row(f"{stage} max abs prob diff", lambda m, s=stage: m[s]["max_abs_prob_diff"])
    for label in LABELS:
        row(f"cascade F1 {label}", lambda m, lb=label: m["cascade"]["per_class"][lb]["f1"])
    lines = [f"# Parity: float vs {parity['quantization']} ({parity['n_images']} held-out images: "
             f"{image_sources(parity['images'])})", "",
             f"Stage 1 threshold {parity['threshold']:.4f}. Float is the Keras model that was validated; "
             "TFLite float32 separates conversion faults from quantization error.", "", header,
             "|---|---|---|---|---|", *rows]
    if "ood" in parity:
        f = parity["ood"]["figures"]
        lines += ["", "## Out-of-distribution referral (stage 1 features, Mahalanobis distance)", "",
                  f"Threshold {parity['ood']['threshold']:.3f} (the {parity['ood']['percentile']:g}th percentile of "
                  f"validation radiographs). Test radiographs wrongly referred: "
                  f"{f['test_radiographs_wrongly_referred']:.1%} of {f['test_radiographs']}.", "",
                  f"| unlike images ({f['unlike_images_per_kind']} of each kind) | referred |", "|---|---|"]
        lines += [f"| {kind} | {share:.1%} |" for kind, share in f["unlike_images_referred"].items()]
    if "calibration" in parity:
        from .reliability import reliability_markdown

        lines += reliability_markdown(parity["calibration"])
    for stage, layers in parity.get("layer_errors", {}).items():
        lines += ["", f"## {stage}: layers with the largest quantization error (TensorFlow's quantization debugger)", "",
                  "| op | tensor | mean squared error | max abs error |", "|---|---|---|---|"]
        lines += [f"| {r.get('op_name')} | {str(r.get('tensor_name', ''))[:60]} | {r.get('mean_squared_error', 0):.3g} | "
                  f"{r.get('max_abs_error', 0):.3g} |" for r in layers[:5]]
    if "search" in parity:
        from .search import search_markdown

        lines += ["", *search_markdown(parity["search"], f"{parity['n_images']} images ({image_sources(parity['images'])})")]
    lines += ["", *gate_markdown(parity["gate"], parity["quantization"])]  # the verdict closes the file
    return "\n".join(lines) + "\n"


def image_sources(images: dict) -> str:
    """Where the parity images came from, e.g. "240 val, 240 test, 4000 parity_data"."""
    return ", ".join(f"{n} {name}" for name, n in images["counts"].items() if n)


def gate_markdown(gate: dict, name: str) -> list[str]:
    """The gate's section of parity.md: each check with its interval, limit and verdict, then the verdict."""
    b, m, f = gate["bootstrap"], gate["mcnemar"], gate["float_model"]
    lines = ["## Gate", "", f"| check | float | {name} | estimate | 95% interval | limit | verdict |",
             "|---|---|---|---|---|---|---|"]
    for c in gate["checks"]:
        title = "agreement with float" if c["higher_is_better"] else f"{c['name']} drop"
        bound = ">=" if c["higher_is_better"] else "<="
        settle = f" (about {c['images_to_settle']:,} images to settle)" if c["images_to_settle"] else ""
        lines.append(f"| {title} | {c['float_value']:.4f} | {c['quantized_value']:.4f} | {c['estimate']:+.4f} | "
                     f"{c['low']:+.4f} to {c['high']:+.4f} | {bound} {c['limit']:g} | {c['verdict']}{settle} |")
    lines += ["", f"Intervals: drops from a paired bootstrap over the images ({b['samples']} resamples, seed "
              f"{b['seed']}, percentile), agreement from Wilson's score interval. A check passes when its whole "
              "interval is within its limit, fails when its estimate is past it, and is inconclusive otherwise.",
              "", f"McNemar's exact test: {m['right_only_float']} images right only in float, "
              f"{m['right_only_quantized']} right only in {name}; p = {m['p_value']:.3g} "
              "(a small p says the accuracies differ, not by how much: the accuracy check says that).", "",
              f"Float model: cascade accuracy {f['accuracy']:.4f} (95% CI {f['low']:.4f} to {f['high']:.4f}), "
              f"chance {f['chance']:.4f} (always the commonest class): "
              + ("learned." if f["learned"] else "NOT WORTH QUANTIZING."), ""]
    lines += [f"- {line}" for line in gate["failures"]]
    return lines + ["", f"**Verdict: {verdict_line(gate)}**"]
