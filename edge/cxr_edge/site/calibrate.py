"""`cxr-edge calibrate`: the operating point from a clinic's own labelled images, on the box (numpy only).

Scores shift with the population, the X-ray unit and the model version, so screening programmes calibrate the
threshold locally. The images go through the very path `classify` uses (sanity, header, out-of-distribution and
self-test checks); images the box would refer whatever the threshold (out-of-distribution, header, sanity) are
left out of the figures and counted, as are unreadable files. The result is a site file (cxr_edge.site.site_file).
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import numpy as np

from cxr_edge import DISCLAIMER
from cxr_edge.inputs.discover import find_images
from cxr_edge.labels import LABELS, UnknownLabelError, label_from_folder
from cxr_edge.models.cascade import combine, sensitivity_threshold
from cxr_edge.run.classify import Classifier, classify_paths, rows_of
from cxr_edge.run.result import printable
from cxr_edge.reasons import THRESHOLD_FREE, short_name
from cxr_edge.site.site_file import SITE_FORMAT
from cxr_edge.site.stats import auc_delong, images_for_margin, wilson

ABNORMAL = "abnormal"  # what a clinic that knows no more than normal/abnormal calls the rest
CANDIDATE_SENSITIVITIES = (0.80, 0.85, 0.90, 0.95, 0.98, 1.00)
# The floor: a threshold is written only when both sensitivity and specificity are known to within ±10 points
# (Wilson, 95%): at least 24 abnormal images at a 95% target, and 93 normal ones (the worst case, near 50%).
FLOOR_MARGIN = 0.10
WANTED_MARGIN = 0.05  # what the output recommends (82 abnormal images at a 95% target)


class CalibrationError(ValueError):
    """Labelled images that cannot calibrate a threshold; the message says what is missing."""


def _label(name: str) -> str:
    if name.strip().lower() == ABNORMAL:
        return ABNORMAL
    return label_from_folder(name)


def labelled_images(source: Path) -> tuple[Path, dict[str, str]]:
    """(folder, {relative path: label}) from class sub-folders (the label names, the Database's, or normal /
    abnormal), or from a CSV of path,label (paths relative to the CSV's folder)."""
    source = Path(source)
    try:
        if source.is_file():
            return source.parent, _from_csv(source)
        labels = {}
        for sub in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")):
            label = _label(sub.name)
            inner = sub / "images" if (sub / "images").is_dir() else sub
            labels.update({p.relative_to(source).as_posix(): label for p in find_images(inner, recursive=True)})
    except UnknownLabelError as exc:
        raise CalibrationError(f"{source}: {exc}, or 'abnormal'") from None
    if not labels:
        raise CalibrationError(f"{source} holds no labelled images: give class sub-folders (normal/ and abnormal/, "
                               "or the four labels) or a CSV of path,label")
    return source, labels


def _from_csv(path: Path) -> dict[str, str]:
    labels = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for number, row in enumerate(csv.reader(fh), 1):
            if not row or row[0].startswith("#") or (number == 1 and row[0].strip().lower() == "path"):
                continue
            if len(row) < 2:
                raise CalibrationError(f"{path}, line {number}: expected path,label")
            labels[row[0].strip()] = _label(row[1])
    return labels


def _operating(p_abnormal, stage2, is_abnormal, threshold: float, floor: float) -> dict:
    """Sensitivity and specificity (with Wilson intervals), share flagged abnormal and share referred for low
    confidence, at one threshold."""
    labels, probs = combine(p_abnormal, stage2, threshold)
    flagged = labels > 0
    tp, positives = int((flagged & is_abnormal).sum()), int(is_abnormal.sum())
    tn, negatives = int((~flagged & ~is_abnormal).sum()), int((~is_abnormal).sum())
    low_confidence = probs[np.arange(len(labels)), labels] < floor
    return {"threshold": round(float(threshold), 6),
            "sensitivity": tp / positives, "sensitivity_ci": wilson(tp, positives),
            "specificity": tn / negatives, "specificity_ci": wilson(tn, negatives),
            "flagged_abnormal": float(flagged.mean()), "referred_low_confidence": float(low_confidence.mean())}


def _stage2(labels: np.ndarray, truth: list[str]) -> dict | None:
    """The four-label confusion matrix and per-class recall over the images labelled with a disease or normal."""
    known = [i for i, t in enumerate(truth) if t in LABELS]
    if not any(truth[i] != LABELS[0] for i in known):
        return None
    matrix = np.zeros((len(LABELS), len(LABELS)), dtype=np.int64)
    for i in known:
        matrix[LABELS.index(truth[i]), labels[i]] += 1
    support = matrix.sum(axis=1)
    recall = {lb: (float(matrix[j, j] / support[j]) if support[j] else None) for j, lb in enumerate(LABELS)}
    return {"confusion": matrix.tolist(), "recall": recall, "support": dict(zip(LABELS, support.tolist()))}


def calibrate(classifier: Classifier, source: Path, target_sensitivity: float) -> dict:
    """Every figure of a calibration run; `ready` says whether there are enough images to write a threshold."""
    folder, truth_by_path = labelled_images(source)
    names = sorted(truth_by_path)
    return figures_of(classifier, rows_of(list(classify_paths(classifier, folder, names))), truth_by_path,
                      target_sensitivity)


def calibration_floors(target_sensitivity: float) -> dict[str, int]:
    """The fewest abnormal and normal images a threshold is written from (FLOOR_MARGIN)."""
    return {"abnormal": max(images_for_margin(target_sensitivity, FLOOR_MARGIN),
                            math.ceil(1 / max(1e-9, 1 - target_sensitivity))),
            "normal": images_for_margin(0.5, FLOOR_MARGIN)}


def figures_of(classifier: Classifier, results: list, truth_by_path: dict[str, str],
               target_sensitivity: float) -> dict:
    """The figures of `calibrate` from rows classified already (a folder's, or the reviewed images of the clinic
    node: cxr_edge.web.reviews) and the truth by row path."""
    unreadable = [r for r in results if r.error]
    excluded: dict[str, int] = {}
    used = []
    for r in results:
        if r.error:
            continue
        codes = [c for c in r.reason_codes if c in THRESHOLD_FREE]
        for code in codes:
            excluded[code] = excluded.get(code, 0) + 1
        if not codes:
            used.append(r)
    truth = [truth_by_path[r.path] for r in used]
    is_abnormal = np.array([t != LABELS[0] for t in truth], dtype=bool)
    probs = np.array([r.probs for r in used], dtype=np.float64).reshape(-1, len(LABELS))
    p_abnormal = 1.0 - probs[:, 0]
    stage2 = probs[:, 1:] / np.maximum(p_abnormal, 1e-12)[:, None]
    n_abnormal, n_normal = int(is_abnormal.sum()), int((~is_abnormal).sum())
    floors = calibration_floors(target_sensitivity)
    figures = {"images": len(results), "used": len(used), "abnormal": n_abnormal, "normal": n_normal,
               "unreadable": [{"path": printable(r.path), "error": r.error} for r in unreadable],
               "excluded_referred": excluded, "target_sensitivity": target_sensitivity, "floors": floors,
               "abnormal_for_5_points": images_for_margin(target_sensitivity, WANTED_MARGIN),
               "confidence_floor": classifier.min_confidence}
    figures["ready"] = n_abnormal >= floors["abnormal"] and n_normal >= floors["normal"]
    if n_abnormal < 2 or n_normal < 2:
        raise CalibrationError(f"{n_abnormal} abnormal and {n_normal} normal images could be used: calibration "
                               f"needs both, at least {floors['abnormal']} abnormal and {floors['normal']} normal")
    figures["auc"] = auc_delong(p_abnormal[is_abnormal], p_abnormal[~is_abnormal])
    floor = classifier.min_confidence
    figures["at_bundle_threshold"] = _operating(p_abnormal, stage2, is_abnormal, classifier.bundle.threshold, floor)
    chosen = sensitivity_threshold(p_abnormal, is_abnormal, target_sensitivity)
    figures["chosen"] = _operating(p_abnormal, stage2, is_abnormal, chosen, floor)
    figures["candidates"] = [{"target": s, **_operating(p_abnormal, stage2, is_abnormal,
                                                        sensitivity_threshold(p_abnormal, is_abnormal, s), floor)}
                             for s in CANDIDATE_SENSITIVITIES]
    labels, _ = combine(p_abnormal, stage2, chosen)
    figures["stage2"] = _stage2(labels, truth)
    classified = [r for r in results if not r.error]
    figures["expected"] = {"flagged_abnormal": figures["chosen"]["flagged_abnormal"],
                           "referred_ood": excluded.get("ood", 0) / max(1, len(classified)),
                           "images": len(classified)}
    return figures


def site_record(classifier: Classifier, figures: dict, site_name: str) -> dict:
    """The site file's content (cxr_edge.site.site_file reads it)."""
    return {"format": SITE_FORMAT, "site": site_name, "created": time.strftime("%Y-%m-%d"),
            "bundle": {"manifest_sha256": classifier.bundle.manifest_sha256, "name": classifier.bundle.path.name},
            "threshold": figures["chosen"]["threshold"], "min_confidence": classifier.min_confidence,
            "target_sensitivity": figures["target_sensitivity"], "expected": figures["expected"],
            "figures": figures, "notice": DISCLAIMER}


def _rate(row: dict, key: str) -> str:
    lo, hi = row[f"{key}_ci"]
    return f"{row[key]:.3f} ({lo:.3f}-{hi:.3f})"


def format_calibration(record: dict) -> str:
    f = record["figures"]
    auc, lo, hi = f["auc"]
    excluded = ", ".join(f"{short_name(code)} {n}" for code, n in f["excluded_referred"].items()) or "none"
    lines = [f"Calibration for {record['site']!r}: {f['images']} labelled images, {f['used']} used "
             f"({f['abnormal']} abnormal, {f['normal']} normal); left out as referred whatever the threshold: "
             f"{excluded}; unreadable: {len(f['unreadable'])}",
             f"stage 1 ROC AUC {auc:.3f} (95% CI {lo:.3f}-{hi:.3f}, DeLong)",
             f"at the bundle's threshold {f['at_bundle_threshold']['threshold']:.4f}: sensitivity "
             f"{_rate(f['at_bundle_threshold'], 'sensitivity')}, specificity "
             f"{_rate(f['at_bundle_threshold'], 'specificity')} (95% Wilson intervals)",
             f"chosen threshold {f['chosen']['threshold']:.4f} (sensitivity >= {f['target_sensitivity']:.2f} here): "
             f"sensitivity {_rate(f['chosen'], 'sensitivity')}, specificity {_rate(f['chosen'], 'specificity')}",
             "", "candidate thresholds (flagged: share called abnormal; low-conf: share referred for low confidence)",
             f"{'target':>7s}{'threshold':>11s}{'sensitivity':>13s}{'specificity':>13s}{'flagged':>9s}{'low-conf':>10s}"]
    for row in f["candidates"]:
        lines.append(f"{row['target']:>7.2f}{row['threshold']:>11.4f}{row['sensitivity']:>13.3f}{row['specificity']:>13.3f}"
                     f"{row['flagged_abnormal']:>9.0%}{row['referred_low_confidence']:>10.0%}")
    if f["stage2"]:
        recall = ", ".join(f"{lb} {r:.2f}" if r is not None else f"{lb} -" for lb, r in f["stage2"]["recall"].items())
        lines += ["", f"with disease labels, at the chosen threshold: recall {recall}",
                  f"confusion (rows true, columns predicted, {', '.join(LABELS)}): {f['stage2']['confusion']}"]
    half = (f["chosen"]["sensitivity_ci"][1] - f["chosen"]["sensitivity_ci"][0]) / 2
    lines += ["", f"sensitivity is known to within about ±{half:.0%} from {f['abnormal']} abnormal images; "
                  f"±5 points needs about {f['abnormal_for_5_points']} (the floor for a site file: "
                  f"{f['floors']['abnormal']} abnormal and {f['floors']['normal']} normal)",
              f"expected in use: {f['expected']['flagged_abnormal']:.0%} flagged abnormal, "
              f"{f['expected']['referred_ood']:.0%} referred as out-of-distribution", record["notice"]]
    return "\n".join(lines)
