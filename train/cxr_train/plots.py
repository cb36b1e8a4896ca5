"""Figures like the study's: training curves for both stages and the cascade confusion matrix."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; the training machine may have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cxr_edge.labels import LABELS  # noqa: E402


def _read_history(path: Path) -> dict[str, list[float]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {key: [float(r[key]) for r in rows] for key in (rows[0].keys() if rows else [])}


def plot_curves(run_dir: Path, out: Path) -> None:
    """Accuracy and loss, train vs validation, for stage 1 and stage 2 (2x2 panels)."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)
    for row, stage in enumerate(("stage1", "stage2")):
        history = _read_history(run_dir / f"history_{stage}.csv")
        epochs = np.arange(1, len(history.get("loss", [])) + 1)
        for col, metric in enumerate(("accuracy", "loss")):
            ax = axes[row, col]
            ax.plot(epochs, history.get(metric, []), label="train")
            ax.plot(epochs, history.get(f"val_{metric}", []), label="validation")
            ax.set_title(f"{stage.replace('stage', 'Stage ')}: {metric}")
            ax.set_xlabel("epoch")
            ax.legend()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_confusion(confusion: np.ndarray, out: Path, title: str) -> None:
    """The 4x4 matrix with row and column totals, counts in each cell."""
    n = len(LABELS)
    table = np.zeros((n + 1, n + 1), dtype=int)
    table[:n, :n] = confusion
    table[:n, n] = confusion.sum(axis=1)
    table[n, :n] = confusion.sum(axis=0)
    table[n, n] = confusion.sum()
    fig, ax = plt.subplots(figsize=(7, 6), constrained_layout=True)
    shade = np.zeros_like(table, dtype=float)
    row_totals = np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    shade[:n, :n] = confusion / row_totals
    ax.imshow(shade, cmap="Blues", vmin=0, vmax=1)
    for i in range(n + 1):
        for j in range(n + 1):
            ax.text(j, i, str(table[i, j]), ha="center", va="center",
                    color="white" if shade[i, j] > 0.6 else "black", fontweight="bold" if n in (i, j) else None)
    names = [*LABELS, "total"]
    ax.set_xticks(range(n + 1), names, rotation=30, ha="right")
    ax.set_yticks(range(n + 1), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.savefig(out, dpi=110)
    plt.close(fig)
