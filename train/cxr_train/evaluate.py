"""The study's evaluation tables, computed with scikit-learn: the 4x4 cascade confusion matrix with totals
(its Table 2), per-class precision/recall/F1 (its Table 3), and stage 1 and stage 2 figures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from cxr_edge.atomic import write_atomic
from cxr_edge.labels import LABELS
from cxr_edge.models.cascade import combine


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, names=LABELS) -> dict:
    """Accuracy, macro-F1, balanced accuracy, per-class P/R/F1 and the confusion matrix, in `names` order."""
    idx = list(range(len(names)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=idx, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=idx, average="macro", zero_division=0)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                             "support": int(support[i])} for i, name in enumerate(names)},
        "confusion": confusion_matrix(y_true, y_pred, labels=idx).tolist(),
    }


def stage1_metrics(y_true: np.ndarray, p_abnormal: np.ndarray, threshold: float) -> dict:
    """Normal (0) vs abnormal (1) at the operating threshold."""
    abnormal = y_true != 0
    predicted = p_abnormal >= threshold
    tp, fn = int((predicted & abnormal).sum()), int((~predicted & abnormal).sum())
    tn, fp = int((~predicted & ~abnormal).sum()), int((predicted & ~abnormal).sum())
    both = abnormal.any() and (~abnormal).any()
    return {
        "threshold": float(threshold),
        "accuracy": (tp + tn) / len(y_true),
        "sensitivity": tp / (tp + fn) if tp + fn else None,
        "specificity": tn / (tn + fp) if tn + fp else None,
        "roc_auc": float(roc_auc_score(abnormal, p_abnormal)) if both else None,
    }


def evaluate_predictions(y_true: np.ndarray, p_abnormal: np.ndarray, stage2: np.ndarray, threshold: float) -> dict:
    """Every figure of eval/metrics.json from the two stages' outputs."""
    y_pred, _ = combine(p_abnormal, stage2, threshold)
    abnormal = y_true != 0
    stage2_pred = 1 + np.argmax(stage2, axis=1)
    return {
        "n_images": int(len(y_true)),
        "labels": list(LABELS),
        "cascade": classification_metrics(y_true, y_pred),
        "stage1": stage1_metrics(y_true, p_abnormal, threshold),
        "stage2": {"accuracy": float((stage2_pred[abnormal] == y_true[abnormal]).mean()) if abnormal.any() else None,
                   "n_images": int(abnormal.sum())},
    }


def write_eval(out_dir: os.PathLike | str, metrics: dict, title: str) -> None:
    """eval/: confusion.csv, confusion.png, metrics.json, report.md."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    confusion = np.array(metrics["cascade"]["confusion"])
    write_atomic(out / "confusion.csv", _confusion_csv(confusion))
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_atomic(out / "report.md", report_markdown(metrics, title))
    from .plots import plot_confusion

    plot_confusion(confusion, out / "confusion.png", title)


def _confusion_csv(confusion: np.ndarray) -> str:
    rows = [["true \\ predicted", *LABELS, "total"]]
    for label, row in zip(LABELS, confusion):
        rows.append([label, *map(int, row), int(row.sum())])
    rows.append(["total", *map(int, confusion.sum(axis=0)), int(confusion.sum())])
    return "\n".join(",".join(map(str, r)) for r in rows) + "\n"


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def report_markdown(metrics: dict, title: str) -> str:
    c, s1, s2 = metrics["cascade"], metrics["stage1"], metrics["stage2"]
    confusion = np.array(c["confusion"])
    lines = [f"# {title}", "", f"{metrics['n_images']} images, split `{metrics.get('split', '?')}`.", "",
             "## Confusion matrix (rows: true class, columns: predicted; Table 2 layout)", "",
             "| true \\ predicted | " + " | ".join(LABELS) + " | total |",
             "|---" * (len(LABELS) + 2) + "|"]
    for label, row in zip(LABELS, confusion):
        lines.append(f"| {label} | " + " | ".join(str(int(v)) for v in row) + f" | {int(row.sum())} |")
    lines.append("| total | " + " | ".join(str(int(v)) for v in confusion.sum(axis=0)) + f" | {int(confusion.sum())} |")
    lines += ["", "## Per-class precision, recall and F1 (Table 3 layout)", "",
              "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for label, m in c["per_class"].items():
        lines.append(f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    lines += ["", f"Accuracy {c['accuracy']:.3f}, macro-F1 {c['macro_f1']:.3f}, "
                  f"balanced accuracy {c['balanced_accuracy']:.3f}.", "",
              "## Stages", "",
              f"- Stage 1 (normal vs abnormal) at threshold {s1['threshold']:.4f}: accuracy {_fmt(s1['accuracy'])}, "
              f"sensitivity {_fmt(s1['sensitivity'])}, specificity {_fmt(s1['specificity'])}, ROC AUC {_fmt(s1['roc_auc'])}.",
              f"- Stage 2 (disease, on the {s2['n_images']} truly abnormal images): accuracy {_fmt(s2['accuracy'])}.",
              "", "Pre-diagnosis aid, not a diagnosis: a clinician must review every result.", ""]
    return "\n".join(lines)
