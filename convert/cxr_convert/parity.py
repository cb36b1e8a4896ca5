"""The float-vs-quantized parity check: float Keras, float32 TFLite and quantized TFLite models on the same
held-out images, for stage 1, stage 2 and the cascade, and the gate that decides `deployable`.

The TFLite models run through cxr_edge's own interpreter code, so the check validates what the box runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxr_edge.cascade import combine
from cxr_edge.interpreter import TFLiteModel, predict_in_batches
from cxr_edge.labels import LABELS, STAGE1_LABELS, STAGE2_LABELS
from cxr_train.evaluate import classification_metrics


@dataclass(frozen=True)
class Limits:
    max_accuracy_drop: float = 0.01
    max_f1_drop: float = 0.02
    min_agreement: float = 0.98


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


def gate(float_metrics: dict, quantized_metrics: dict, limits: Limits, name: str) -> list[str]:
    """Every failed check of the cascade, with the float value, the quantized value and the limit."""
    f, q = float_metrics["cascade"], quantized_metrics["cascade"]
    failures = []
    drop = f["accuracy"] - q["accuracy"]
    if drop > limits.max_accuracy_drop + 1e-12:
        failures.append(f"cascade accuracy: float {f['accuracy']:.4f}, {name} {q['accuracy']:.4f}, "
                        f"drop {drop:.4f} > limit {limits.max_accuracy_drop:.4f}")
    for label in LABELS:
        f1_drop = f["per_class"][label]["f1"] - q["per_class"][label]["f1"]
        if f1_drop > limits.max_f1_drop + 1e-12:
            failures.append(f"{label} F1: float {f['per_class'][label]['f1']:.4f}, {name} "
                            f"{q['per_class'][label]['f1']:.4f}, drop {f1_drop:.4f} > limit {limits.max_f1_drop:.4f}")
    if q["agreement"] < limits.min_agreement - 1e-12:
        failures.append(f"cascade agreement with float: float 1.0000, {name} {q['agreement']:.4f}, "
                        f"below limit {limits.min_agreement:.4f}")
    return failures


def parity_markdown(parity: dict) -> str:
    """parity.md: the three models side by side, deltas against float, the verdict."""
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
    g = parity["gate"]
    verdict = "PASSED: deployable" if g["passed"] else "FAILED: not deployable"
    lines = [f"# Parity: float vs {parity['quantization']} ({parity['n_images']} held-out test images)", "",
             f"Stage 1 threshold {parity['threshold']:.4f}. Float is the Keras model that was validated; "
             "TFLite float32 separates conversion faults from quantization error.", "", header,
             "|---|---|---|---|---|", *rows, "", f"## Gate: {verdict}", "",
             f"Limits: cascade accuracy drop <= {g['limits']['max_accuracy_drop']}, each class's F1 drop <= "
             f"{g['limits']['max_f1_drop']}, agreement with float >= {g['limits']['min_agreement']}.", ""]
    lines += [f"- {failure}" for failure in g["failures"]] or ["All checks passed."]
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
    return "\n".join(lines) + "\n"
