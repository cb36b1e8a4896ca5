"""Is a candidate bundle as good as the active one on this clinic's own reviewed images? (shadow mode)

Both bundles classified the same images (cxr_edge.node.candidate); clinicians reviewed some of them (the reader's
finding, or a confirmatory result where it names a label: cxr_edge.node.truth.calibration_set). Each bundle is
put at its own threshold, calibrated on those same reviews as `cxr-edge calibrate --from-reviews` would (at the
active bundle's target sensitivity), so that neither is judged at an operating point made for the other. Three
checks: the candidate's sensitivity and specificity for abnormal, and its agreement with the readers on the four
labels, may each be lower than the active bundle's by at most a margin ([candidate] max_..._drop, 5 points by
default). The drops' 95% intervals come from a paired bootstrap over images in which each calibrated threshold is
chosen again on every resample (a threshold chosen on the reviews is uncertain too; held fixed, the intervals were
too narrow and equally good bundles FAILed often); the verdicts are the parity gate's own rules and code
(cxr_edge.site.gate.drop_check: PASS when the whole interval is within the margin), with one change for a clinic's few
hundred reviews: an estimate past the margin FAILs only when the drop is also significant (its interval above 0),
else it is INCONCLUSIVE. McNemar's exact test (the gate's) and each label's agreement are shown beside. The
verdict is PASS only when every check passes and the reviews are enough to calibrate the candidate (calibration's
floors: both rates known to within 10 points); else it says how many more reviewed images would settle it.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np

from cxr_edge.site.gate import _CHUNK, BOOTSTRAP_SAMPLES, FAIL, INCONCLUSIVE, PASS, drop_check, mcnemar
from cxr_edge.labels import LABELS
from cxr_edge.models.cascade import sensitivity_threshold
from cxr_edge.site.calibrate import ABNORMAL, CalibrationError, figures_of
from cxr_edge.site.stats import wilson

CHECKS = ("sensitivity", "specificity", "agreement with readers")  # the order of _rates' rows


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


def compare(truth: list[str], active_probs: np.ndarray, candidate_probs: np.ndarray,
            thresholds: tuple[float | None, float | None], margins: dict[str, float], calibration: dict,
            target: float = 0.95, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict:
    """The comparison on reviewed images both bundles classified: `truth` per image (a label, or "abnormal" where
    the clinic knows no more), each bundle's (N, 4) probabilities, each one's threshold (active, candidate): a
    number, or None for one calibrated on these images at sensitivity `target` (chosen again in every bootstrap
    resample, so that the intervals carry the threshold's own uncertainty: with it fixed, two equally good bundles
    FAILed 40% of simulated clinics of 100 reviews), the margins by check name, and the candidate's calibration
    (`ready`, `floors`)."""
    truth_array = np.asarray(truth, dtype=object)
    n = len(truth_array)
    is_abnormal = truth_array != LABELS[0]
    named = np.isin(truth_array, LABELS)  # agreement on the four labels: only where the truth names one
    y4 = np.array([LABELS.index(t) if t in LABELS else -1 for t in truth_array], dtype=np.int64)
    probs = [np.asarray(p, np.float64).reshape(-1, len(LABELS)) for p in (active_probs, candidate_probs)]
    scores = [1.0 - p[:, 0] for p in probs]
    disease = [1 + np.argmax(p[:, 1:], axis=1) for p in probs]  # stage 2's choice (combine's), before scaling
    rules = [t if t is not None else _calibrated(sc, is_abnormal, target) for t, sc in zip(thresholds, scores)]
    point = np.array([_rates(sc[None], dis[None], is_abnormal[None], y4[None], named[None], rule, target)
                      for sc, dis, rule in zip(scores, disease, rules)])[:, :, 0]  # (2 bundles, 3)
    drops = _resampled_drops(scores, disease, is_abnormal, y4, named, thresholds, target, samples, seed)
    parts = (is_abnormal.sum(), (~is_abnormal).sum(), named.sum())
    checks, settle = [], []
    for k, name in enumerate(CHECKS):
        if parts[k] == 0:
            check = _empty(name, margins[name])
        else:
            interval = tuple(float(v) for v in np.nanpercentile(drops[:, k], [2.5, 97.5]))
            check = {**asdict(drop_check(name, (float(point[0, k]), float(point[1, k])), interval, margins[name],
                                         int(parts[k]), fail_only_if_significant=True)), "images": int(parts[k])}
        checks.append(check)
        settle.append(_scaled(check, parts[k], n))
    said = [sc >= thr for sc, thr in zip(scores, rules)]
    test = mcnemar(np.ones(n, np.int64), (said[0] == is_abnormal).astype(np.int64),
                   (said[1] == is_abnormal).astype(np.int64))
    labels = [np.where(s_, d, 0) for s_, d in zip(said, disease)]
    verdicts = {c["verdict"] for c in checks}
    verdict = FAIL if FAIL in verdicts else INCONCLUSIVE if INCONCLUSIVE in verdicts else PASS
    more = [s_ for c, s_ in zip(checks, settle) if c["verdict"] == INCONCLUSIVE]
    if verdict == PASS and not calibration.get("ready"):
        verdict = INCONCLUSIVE  # agreeing on a handful of images says little; the floors are calibration's
        more.append(_to_calibrate(calibration, is_abnormal))
    return {"verdict": verdict, "reviewed": n, "abnormal": int(is_abnormal.sum()), "normal": int((~is_abnormal).sum()),
            "checks": checks, "margins": dict(margins),
            "thresholds": {"active": float(rules[0]), "candidate": float(rules[1])},
            "mcnemar": {"right_only_active": test["right_only_float"],
                        "right_only_candidate": test["right_only_quantized"], "p_value": test["p_value"]},
            "per_class": _per_class(truth_array, labels),
            "more_reviews": None if not more or None in more else max(0, max(more) - n),
            "bootstrap": {"samples": samples, "seed": seed, "interval": "95% percentile",
                          "thresholds": "calibrated again in each resample" if None in thresholds else "fixed"}}


def _calibrated(scores: np.ndarray, is_abnormal: np.ndarray, target: float) -> float:
    """calibrate's threshold (cxr_edge.models.cascade.sensitivity_threshold) on these images; nan with no abnormal."""
    return sensitivity_threshold(scores, is_abnormal, target) if is_abnormal.any() else float("nan")


def _rates(scores, disease, abnormal, y4, named, threshold: float | None, target: float) -> np.ndarray:
    """Sensitivity, specificity and agreement with readers (3, B) of one bundle on B weightings of the images
    (rows: an image index drawn per column), at `threshold`, or, None, one calibrated per row as
    sensitivity_threshold does (vectorised over the rows)."""
    if threshold is None:
        masked = np.where(abnormal, scores, -np.inf)
        ranked = -np.sort(-masked, axis=1)  # each row's abnormal scores, highest first
        count = abnormal.sum(1)
        needed = np.maximum(np.ceil(target * count - 1e-9).astype(np.int64), 1)
        cut = np.where(count > 0, ranked[np.arange(len(ranked)), np.minimum(needed, scores.shape[1]) - 1], np.nan)
    else:
        cut = np.full(len(scores), threshold, np.float64)
    said = scores >= cut[:, None]
    label = np.where(said, disease, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([(said & abnormal).sum(1) / abnormal.sum(1), (~said & ~abnormal).sum(1) / (~abnormal).sum(1),
                         ((label == y4) & named).sum(1) / named.sum(1)])


def _resampled_drops(scores, disease, abnormal, y4, named, thresholds, target, samples: int, seed: int) -> np.ndarray:
    """(samples, 3): the active bundle's rate minus the candidate's over resamples of the images with replacement,
    both bundles on the same resample (paired), each threshold calibrated again where it was on the reviews."""
    rng = np.random.default_rng(seed)
    n, parts = len(abnormal), []
    for start in range(0, samples, _CHUNK):
        picks = rng.integers(0, n, (min(_CHUNK, samples - start), n))
        rates = [_rates(sc[picks], dis[picks], abnormal[picks], y4[picks], named[picks], t, target)
                 for sc, dis, t in zip(scores, disease, thresholds)]
        parts.append((rates[0] - rates[1]).T)
    return np.concatenate(parts) if parts else np.zeros((0, 3))


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
