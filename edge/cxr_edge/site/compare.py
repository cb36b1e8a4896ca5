"""Is a candidate bundle as good as the active one on this clinic's own reviewed images? (shadow mode)

Both bundles classified the same images (cxr_edge.node.candidate); clinicians reviewed some of them (the reader's
finding, or a confirmatory result where it names a label: cxr_edge.web.reviews.calibration_set). Each bundle is
put at its own threshold, calibrated on those same reviews as `cxr-edge calibrate --from-reviews` would (at the
active bundle's target sensitivity), so that neither is judged at an operating point made for the other. Then, with
the parity gate's own code (cxr_edge.gate: the paired bootstrap over images, its non-inferiority check, McNemar's
exact test), three checks: the candidate's sensitivity and specificity for abnormal, and its agreement with the
readers on the four labels, may each be lower than the active bundle's by at most a margin ([candidate]
max_..._drop, 5 points by default). A check PASSes when its whole 95% interval is within the margin, FAILs when its
estimate is past it, and is INCONCLUSIVE otherwise. The verdict is PASS only when every check passes and the reviews
are enough to calibrate the candidate (the calibration's floors: both rates known to within 10 points); else it says
how many more reviewed images would settle it, at the rates seen.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np

from cxr_edge.gate import (
    BOOTSTRAP_SAMPLES,
    FAIL,
    INCONCLUSIVE,
    PASS,
    drop_check,
    mcnemar,
    paired_bootstrap,
    scores,
)
from cxr_edge.labels import LABELS
from cxr_edge.models.cascade import combine
from cxr_edge.site.calibrate import ABNORMAL, CalibrationError, figures_of
from cxr_edge.site.stats import wilson

CHECKS = ("sensitivity", "specificity", "agreement with readers")


def threshold_from_reviews(classifier, results: list, truth: dict[str, str], target: float) -> dict:
    """The bundle's threshold calibrated on the reviewed images (`calibrate --from-reviews`), or, with too few
    reviews to calibrate, the one it runs at now; `ready` says which, and `figures` are calibrate's."""
    try:
        figures = figures_of(classifier, results, truth, target)
    except CalibrationError:
        figures = None
    if figures and figures["ready"]:
        return {"threshold": figures["chosen"]["threshold"], "calibrated": True, "figures": figures}
    return {"threshold": float(classifier.threshold), "calibrated": False, "figures": figures}


def compare(truth: list[str], active_probs: np.ndarray, candidate_probs: np.ndarray, thresholds: tuple[float, float],
            margins: dict[str, float], calibration: dict, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict:
    """The comparison on reviewed images both bundles classified: `truth` per image (a label, or "abnormal" where
    the clinic knows no more), each bundle's (N, 4) probabilities, each one's threshold (active, candidate), the
    margins by check name, and the candidate's calibration figures (`ready`, counts, floors)."""
    truth_array = np.asarray(truth, dtype=object)
    labels = [combine(1.0 - np.asarray(p, np.float64)[:, 0], _stage2(p), t)[0]
              for p, t in zip((active_probs, candidate_probs), thresholds)]
    is_abnormal = truth_array != LABELS[0]
    said_abnormal = [lab != 0 for lab in labels]
    checks, settle, n = [], [], len(truth)
    for name, subset, right in (("sensitivity", is_abnormal, 1), ("specificity", ~is_abnormal, 0)):
        check = _binary_check(name, [s[subset] for s in said_abnormal], right, margins[name], samples, seed)
        checks.append(check)
        settle.append(_scaled(check, subset.sum(), n))
    named = np.isin(truth_array, LABELS)  # agreement on the four labels: only where the truth names one
    y_true = np.array([LABELS.index(t) for t in truth_array[named]], dtype=np.int64)
    check = _cascade_check([lab[named] for lab in labels], y_true, margins["agreement with readers"], samples, seed)
    checks.append(check)
    settle.append(_scaled(check, named.sum(), n))
    right = [np.where(said == is_abnormal, 1, 0) for said in said_abnormal]
    test = mcnemar(np.ones(n, np.int64), right[0], right[1])
    verdicts = {c["verdict"] for c in checks}
    verdict = FAIL if FAIL in verdicts else INCONCLUSIVE if INCONCLUSIVE in verdicts else PASS
    more = [s for c, s in zip(checks, settle) if c["verdict"] == INCONCLUSIVE]
    if verdict == PASS and not calibration.get("ready"):
        verdict = INCONCLUSIVE  # agreeing on a handful of images says little; the floors are calibration's
        more.append(_to_calibrate(calibration, is_abnormal))
    return {"verdict": verdict, "reviewed": n, "abnormal": int(is_abnormal.sum()), "normal": int((~is_abnormal).sum()),
            "checks": checks, "margins": dict(margins),
            "thresholds": {"active": thresholds[0], "candidate": thresholds[1]},
            "mcnemar": {"right_only_active": test["right_only_float"],
                        "right_only_candidate": test["right_only_quantized"], "p_value": test["p_value"]},
            "per_class": _per_class(truth_array, labels),
            "more_reviews": None if not more or None in more else max(0, max(more) - n),
            "bootstrap": {"samples": samples, "seed": seed, "interval": "95% percentile"}}


def _stage2(probs) -> np.ndarray:
    probs = np.asarray(probs, np.float64).reshape(-1, len(LABELS))
    return probs[:, 1:] / np.maximum(1.0 - probs[:, 0], 1e-12)[:, None]


def _binary_check(name: str, said: list[np.ndarray], right: int, margin: float, samples: int, seed: int) -> dict:
    """A rate on one side of the truth (sensitivity: the abnormal images, right when said abnormal) as the gate's
    accuracy drop on those images, two classes."""
    if len(said[0]) == 0:
        return _empty(name, margin)
    y_true = np.full(len(said[0]), right, np.int64)
    return _drop(name, y_true, said[0].astype(np.int64), said[1].astype(np.int64), 2, margin, samples, seed)


def _cascade_check(labels: list[np.ndarray], y_true: np.ndarray, margin: float, samples: int, seed: int) -> dict:
    if len(y_true) == 0:
        return _empty("agreement with readers", margin)
    return _drop("agreement with readers", y_true, labels[0], labels[1], len(LABELS), margin, samples, seed)


def _drop(name, y_true, active, candidate, n_classes, margin, samples, seed) -> dict:
    drops, _ = paired_bootstrap(y_true, active, candidate, samples, seed, n_classes)
    accuracy_active, accuracy_candidate, _, _ = scores(y_true, active, candidate, n_classes)
    interval = tuple(float(v) for v in np.percentile(drops, [2.5, 97.5]))
    check = asdict(drop_check(name, (accuracy_active, accuracy_candidate), interval, margin, len(y_true)))
    return {**check, "images": len(y_true)}


def _empty(name: str, margin: float) -> dict:
    """No reviewed image to judge it on: it cannot be settled until there is one."""
    return {"name": name, "float_value": math.nan, "quantized_value": math.nan, "estimate": math.nan,
            "low": math.nan, "high": math.nan, "limit": margin, "higher_is_better": False, "verdict": INCONCLUSIVE,
            "images_to_settle": None, "images": 0}


def _scaled(check: dict, part: int, total: int) -> int | None:
    """A check's images to settle (of its own kind: abnormal ones for sensitivity) as reviewed images in all, at the
    share of that kind seen so far."""
    if check["verdict"] != INCONCLUSIVE:
        return 0
    if check["images_to_settle"] is None or part == 0:
        return None
    return math.ceil(check["images_to_settle"] * total / part)


def _to_calibrate(calibration: dict, is_abnormal: np.ndarray) -> int | None:
    """Reviewed images in all that would give calibration's floors of abnormal and normal ones, at the mix seen."""
    floors = calibration.get("floors")
    if not floors:
        return None
    n, abnormal = len(is_abnormal), int(is_abnormal.sum())
    if abnormal == 0 or abnormal == n:
        return None
    return max(math.ceil(floors["abnormal"] * n / abnormal), math.ceil(floors["normal"] * n / (n - abnormal)))


def _per_class(truth: np.ndarray, labels: list[np.ndarray]) -> dict:
    """For each label the readers gave: how often each bundle said the same, with Wilson intervals (figures, not
    checks: a clinic's reviews hold too few of a rare class to judge it alone)."""
    table = {}
    for index, label in enumerate(LABELS):
        mask = truth == label
        k = int(mask.sum())
        if k:
            table[label] = {"images": k, **{who: _rate(int((lab[mask] == index).sum()), k)
                                            for who, lab in zip(("active", "candidate"), labels)}}
    if (truth == ABNORMAL).any():  # "abnormal" only: agreement is saying abnormal at all
        mask = truth == ABNORMAL
        table[ABNORMAL] = {"images": int(mask.sum()), **{who: _rate(int((lab[mask] != 0).sum()), int(mask.sum()))
                                                         for who, lab in zip(("active", "candidate"), labels)}}
    return table


def _rate(k: int, n: int) -> dict:
    low, high = wilson(k, n)
    return {"rate": k / n, "low": low, "high": high}
