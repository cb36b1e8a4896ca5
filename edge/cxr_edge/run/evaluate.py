"""`cxr-edge evaluate`: the study's tables on a labeled folder, on the box, with numpy only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cxr_edge.inputs.discover import SYSTEM_FOLDERS, find_images
from cxr_edge.labels import LABELS, UnknownLabelError, label_from_folder
from cxr_edge.run.classify import Classifier, classify_paths, rows_of
from cxr_edge.run.result import printable


class LabeledFolderError(ValueError):
    """A folder that is not labeled by class sub-folders."""


def labeled_images(folder: Path) -> list[tuple[Path, str]]:
    """(image, label) for each class sub-folder; the Database layout's images/ is used when present."""
    pairs = []
    subs = (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in SYSTEM_FOLDERS)
    for sub in sorted(subs):  # system folders (System Volume Information, ...) are skipped, as classify skips them
        try:
            label = label_from_folder(sub.name)
        except UnknownLabelError as exc:
            raise LabeledFolderError(f"in {folder}: {exc}") from None
        source = sub / "images" if (sub / "images").is_dir() else sub
        pairs += [(p, label) for p in find_images(source, recursive=False)]
    if not pairs:
        raise LabeledFolderError(f"{folder} holds no labeled images: expected class sub-folders such as Normal/ "
                                 "and COVID/ with images in them")
    return pairs


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def table_metrics(matrix: np.ndarray) -> dict:
    """Per-class precision, recall, F1 (0 where undefined, as scikit-learn's zero_division=0), accuracy, macro-F1."""
    tp = np.diag(matrix).astype(float)
    predicted, actual = matrix.sum(axis=0).astype(float), matrix.sum(axis=1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    total = matrix.sum()
    return {"accuracy": float(tp.sum() / total) if total else 0.0, "macro_f1": float(f1.mean()),
            "per_class": {label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                                  "support": int(actual[i])} for i, label in enumerate(LABELS)},
            "confusion": matrix.tolist()}


def evaluate_folder(classifier: Classifier, folder: Path) -> dict:
    folder = Path(folder)
    pairs = labeled_images(folder)
    truth = {p.relative_to(folder).as_posix(): label for p, label in pairs}
    results = rows_of(list(classify_paths(classifier, folder, list(truth))))
    ok = [r for r in results if not r.error]
    y_true = np.array([LABELS.index(truth[r.path]) for r in ok], dtype=np.int64)
    y_pred = np.array([LABELS.index(r.label) for r in ok], dtype=np.int64)
    metrics = table_metrics(confusion(y_true, y_pred, len(LABELS)))
    metrics.update(images=len(results), referred=sum(r.refer for r in ok),
                   errors=[{"path": printable(r.path), "error": r.error} for r in results if r.error])
    return metrics


def format_table(m: dict) -> str:
    matrix = np.array(m["confusion"])
    width = max(len(lb) for lb in LABELS) + 2
    lines = [f"Confusion matrix, {m['images']} images (rows: true class, columns: predicted)", "",
             "true \\ predicted".ljust(width) + "".join(lb.rjust(width) for lb in LABELS) + "total".rjust(8)]
    for label, row in zip(LABELS, matrix):
        lines.append(label.ljust(width) + "".join(str(v).rjust(width) for v in row) + str(row.sum()).rjust(8))
    lines.append("total".ljust(width) + "".join(str(v).rjust(width) for v in matrix.sum(axis=0))
                 + str(matrix.sum()).rjust(8))
    lines += ["", "class".ljust(width) + "precision".rjust(11) + "recall".rjust(9) + "F1".rjust(8) + "support".rjust(9)]
    for label, c in m["per_class"].items():
        lines.append(label.ljust(width) + f"{c['precision']:11.3f}{c['recall']:9.3f}{c['f1']:8.3f}{c['support']:9d}")
    lines += ["", f"accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}; referred {m['referred']}; "
                  f"errors {len(m['errors'])}"]
    lines += [f"  error: {e['path']}: {e['error']}" for e in m["errors"]]
    return "\n".join(lines)
