"""Whether "p = 0.8" means 80%: expected calibration error and reliability diagrams of the float and the quantized
models on the parity images, for parity.json, parity.md and reliability.png."""

from __future__ import annotations

import io

import numpy as np

from cxr_edge.models.cascade import combine

BINS = 10  # equal-width confidence bins, as in Guo et al. 2017


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> dict:
    """Expected calibration error (the images-weighted gap between confidence and accuracy per bin) and the
    per-bin figures a reliability diagram draws."""
    confidence, correct = np.asarray(confidence, np.float64), np.asarray(correct, np.float64)
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        inside = index == b
        n = int(inside.sum())
        if n:
            gap = abs(float(correct[inside].mean()) - float(confidence[inside].mean()))
            ece += n / len(confidence) * gap
            rows.append({"bin": [b / bins, (b + 1) / bins], "images": n,
                         "confidence": float(confidence[inside].mean()), "accuracy": float(correct[inside].mean())})
    return {"ece": ece, "bins": rows, "images": len(confidence)}


def model_reliability(y_true: np.ndarray, threshold: float, predictions) -> dict:
    """Stage 1 (p(abnormal) against the abnormal truth) and the cascade (the label's probability against
    whether the label is right)."""
    labels, probs = combine(predictions.p_abnormal, predictions.stage2, threshold)
    return {"stage1": reliability(predictions.p_abnormal, y_true != 0),
            "cascade": reliability(probs[np.arange(len(labels)), labels], labels == y_true)}


def reliability_png(figures: dict) -> bytes:
    """Reliability diagrams, one panel per stage, the float and the quantized model in each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, stage, title in zip(axes, ("stage1", "cascade"), ("stage 1: p(abnormal)", "cascade: label's probability")):
        ax.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1, label="perfect calibration")
        for model, style in (("float", "o-"), ("quantized", "s--")):
            r = figures[model][stage]
            ax.plot([b["confidence"] for b in r["bins"]], [b["accuracy"] for b in r["bins"]], style,
                    label=f"{model} (ECE {r['ece']:.3f})")
        ax.set(title=title, xlabel="predicted probability (mean per bin)", ylabel="observed frequency",
               xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle("Reliability on the parity images (not a diagnosis)", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def reliability_markdown(figures: dict) -> list[str]:
    lines = ["", "## Calibration of probabilities (parity images, 10 bins; reliability.png)", "",
             "| model | stage 1 ECE | cascade ECE |", "|---|---|---|"]
    for model in ("float", "quantized"):
        lines.append(f"| {model} | {figures[model]['stage1']['ece']:.4f} | {figures[model]['cascade']['ece']:.4f} |")
    lines += ["", "Expected calibration error: the gap between a probability and how often it comes true, averaged "
                  "over the images. Small means \"p = 0.8\" is right about 80% of the time on these images; a new "
                  "population shifts it (see `cxr-edge calibrate`)."]
    return lines
