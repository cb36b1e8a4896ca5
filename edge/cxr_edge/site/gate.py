"""The parity gate: is the quantized model as good as the float model it copies, and how sure is that answer?

Each check is a point estimate with its 95% interval: a paired bootstrap over images for the cascade's
accuracy drop and each class's F1 drop (the same resampled images score both models), a Wilson interval for
agreement with the float labels. A check PASSes when its whole interval is on the right side of its limit,
FAILs when its point estimate is past the limit, and is INCONCLUSIVE otherwise: the images could not tell,
and the check says how many images would, at the rates observed. Only a gate whose every check passes is
deployable. Separately, the float model itself is checked against chance, so that nobody reads a parity
failure as a quantization fault when the model never learned.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from cxr_edge.labels import LABELS
from cxr_edge.site.stats import Z95, binomial_p_value, wilson

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
BOOTSTRAP_SAMPLES = 2000  # interval ends move by at most 0.0005 from seed to seed (10 seeds, 4,480 demo-like images)
_CHUNK = 200  # resamples weighed at once: (200, N) counts, 10 MB for N = 6,000 images


@dataclass(frozen=True)
class Limits:
    max_accuracy_drop: float = 0.01
    max_f1_drop: float = 0.02
    min_agreement: float = 0.98
    min_float_accuracy: float = 0.0  # besides beating chance; 0 asks for nothing more
    float_above_chance: bool = True  # tests about the box, not the gate, turn this off with the limits


@dataclass(frozen=True)
class Check:
    name: str
    float_value: float  # the float model's accuracy or F1 (agreement: 1, the float model with itself)
    quantized_value: float
    estimate: float  # the drop (float - quantized), or the agreement
    low: float  # its 95% interval
    high: float
    limit: float
    higher_is_better: bool  # agreement must stay at or above its limit; drops at or below theirs
    verdict: str
    images_to_settle: int | None  # INCONCLUSIVE only: images that would settle it at the observed rates


def _indicators(y_true: np.ndarray, reference: np.ndarray, candidate: np.ndarray, n_classes: int) -> np.ndarray:
    """Per image (rows), for both models: right or wrong, and per class truly it, a true positive, predicted it."""
    classes = np.arange(n_classes)
    truth = y_true[:, None] == classes
    said_ref, said_cand = reference[:, None] == classes, candidate[:, None] == classes
    return np.concatenate([np.stack([y_true == reference, y_true == candidate], 1), truth,
                           truth & said_ref, said_ref, truth & said_cand, said_cand], 1).astype(np.float64)


def _scores(weights: np.ndarray, indicators: np.ndarray) -> tuple[np.ndarray, ...]:
    """Accuracy (B,) and per-class F1 (B, classes) of both models for B weightings of the images (how often
    each image was drawn)."""
    s = weights @ indicators
    true, tp_ref, pred_ref, tp_cand, pred_cand = np.split(s[:, 2:], 5, axis=1)
    n = weights.sum(1)
    return s[:, 0] / n, s[:, 1] / n, _f1(tp_ref, pred_ref, true), _f1(tp_cand, pred_cand, true)


def scores(y_true, reference, candidate, n_classes: int = len(LABELS)) -> tuple:
    """On every image once: accuracy of the reference and the candidate, and each one's per-class F1."""
    acc_ref, acc_cand, f1_ref, f1_cand = _scores(np.ones((1, len(y_true))),
                                                 _indicators(y_true, reference, candidate, n_classes))
    return float(acc_ref[0]), float(acc_cand[0]), f1_ref[0], f1_cand[0]


def paired_bootstrap(y_true: np.ndarray, reference: np.ndarray, candidate: np.ndarray, samples: int,
                     seed: int, n_classes: int = len(LABELS)) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy drop (samples,) and per-class F1 drop (samples, n_classes) of `candidate` against
    `reference` over `samples` resamples of the images with replacement; each resample scores both models."""
    indicators = _indicators(y_true, reference, candidate, n_classes)
    n = len(y_true)
    rng = np.random.default_rng(seed)
    parts = []
    for start in range(0, samples, _CHUNK):
        b = min(_CHUNK, samples - start)
        picks = rng.integers(0, n, (b, n)) + (np.arange(b) * n)[:, None]
        weights = np.bincount(picks.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        acc_ref, acc_cand, f1_ref, f1_cand = _scores(weights, indicators)
        parts.append((acc_ref - acc_cand, f1_ref - f1_cand))
    return np.concatenate([a for a, _ in parts]), np.concatenate([f for _, f in parts])


def _f1(tp: np.ndarray, predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """F1 from counts, 0 where a class is neither predicted nor present (as scikit-learn's zero_division=0)."""
    denominator = predicted + true
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def mcnemar(y_true: np.ndarray, reference: np.ndarray, candidate: np.ndarray) -> dict:
    """McNemar's exact test: of the images that exactly one model gets right, is the split 50:50?"""
    right_ref, right_cand = np.asarray(reference) == y_true, np.asarray(candidate) == y_true
    only_ref, only_cand = int((right_ref & ~right_cand).sum()), int((~right_ref & right_cand).sum())
    return {"right_only_float": only_ref, "right_only_quantized": only_cand,
            "p_value": binomial_p_value(only_ref, only_ref + only_cand, 0.5)}


def drop_check(name: str, values: tuple[float, float], interval: tuple[float, float], limit: float,
               n: int, fail_only_if_significant: bool = False) -> Check:
    """A drop from the float value to the quantized one that must stay at or below `limit`. Settling: the
    interval's upper half-width shrinks as 1/sqrt(images), as a bootstrap's does. `fail_only_if_significant`: an
    estimate past the limit FAILs only when the drop is also significant (its interval above 0), else it is
    INCONCLUSIVE; for the few hundred images of a clinic's reviews (shadow mode), where an estimate alone is past
    a 5-point margin by chance for two equally good models (benchmarks.candidate_power)."""
    estimate = values[0] - values[1]
    low, high = interval
    if estimate > limit + 1e-12 and fail_only_if_significant and low <= 0:
        # the interval's lower half-width shrinks as 1/sqrt(images) too: images at which it clears 0
        settle = math.ceil(n * ((estimate - low) / estimate) ** 2)
        return Check(name, *values, estimate, low, high, limit, False, INCONCLUSIVE, settle)
    if estimate > limit + 1e-12:
        verdict, settle = FAIL, None
    elif high <= limit + 1e-12:
        verdict, settle = PASS, None
    else:
        verdict = INCONCLUSIVE
        settle = None if estimate >= limit else math.ceil(n * ((high - estimate) / (limit - estimate)) ** 2)
    return Check(name, *values, estimate, low, high, limit, False, verdict, settle)


def agreement_check(agreeing: int, n: int, limit: float) -> Check:
    """Agreement with the float labels, which must stay at or above `limit`, with its Wilson interval."""
    estimate = agreeing / n
    low, high = wilson(agreeing, n)
    if estimate < limit - 1e-12:
        verdict, settle = FAIL, None
    elif low >= limit - 1e-12:
        verdict, settle = PASS, None
    else:
        verdict, settle = INCONCLUSIVE, images_for_wilson_low(estimate, limit) if estimate > limit else None
    return Check("agreement", 1.0, estimate, estimate, low, high, limit, True, verdict, settle)


def images_for_wilson_low(p: float, limit: float, z: float = Z95) -> int:
    """The fewest images at which a proportion `p` (> limit) has a Wilson lower bound at or above `limit`."""
    low = lambda n: wilson(p * n, n, z)[0]  # noqa: E731 (the bound only grows with n for a fixed p)
    hi = 1
    while low(hi) < limit:
        hi *= 2
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if low(mid) >= limit else (mid, hi)
    return hi


def float_model_check(y_true: np.ndarray, reference: np.ndarray, limits: Limits) -> dict:
    """Did the float model learn? Its cascade accuracy's Wilson interval against chance, taken as the
    share of the commonest class (what always saying that class scores), and against min_float_accuracy."""
    n = len(y_true)
    right = int((np.asarray(reference) == y_true).sum())
    low, high = wilson(right, n)
    chance = float(np.bincount(y_true, minlength=len(LABELS)).max() / n)
    problems = []
    if limits.float_above_chance and low <= chance:
        problems.append(f"the float model is no better than chance: cascade accuracy {right / n:.4f} (95% CI "
                        f"{low:.4f}-{high:.4f}) against {chance:.4f} for always saying the commonest class; "
                        "train it further (more epochs or images) before quantizing: its parity means nothing")
    if right / n < limits.min_float_accuracy:
        problems.append(f"the float model's cascade accuracy {right / n:.4f} is below --min-float-accuracy "
                        f"{limits.min_float_accuracy:.4f}")
    return {"accuracy": right / n, "low": low, "high": high, "chance": chance, "learned": not problems,
            "problems": problems}


def evaluate_gate(y_true: np.ndarray, reference: np.ndarray, candidate: np.ndarray, limits: Limits,
                  samples: int = BOOTSTRAP_SAMPLES, seed: int = 0, name: str = "quantized") -> dict:
    """The gate on the cascade labels of the float (`reference`) and quantized (`candidate`, called `name` in
    its failure lines) models."""
    y_true, reference, candidate = (np.asarray(a, np.int64) for a in (y_true, reference, candidate))
    n = len(y_true)
    if n == 0:
        raise ValueError("the parity gate has no images: the parity split is empty")
    accuracy_drops, f1_drops = paired_bootstrap(y_true, reference, candidate, samples, seed)
    interval = lambda x: tuple(float(v) for v in np.percentile(x, [2.5, 97.5]))  # noqa: E731
    acc_ref, acc_cand, f1_ref, f1_cand = scores(y_true, reference, candidate)
    checks = [drop_check("accuracy", (acc_ref, acc_cand), interval(accuracy_drops), limits.max_accuracy_drop, n)]
    checks += [drop_check(f"{label} F1", (float(f1_ref[i]), float(f1_cand[i])), interval(f1_drops[:, i]),
                          limits.max_f1_drop, n) for i, label in enumerate(LABELS)]
    checks.append(agreement_check(int((reference == candidate).sum()), n, limits.min_agreement))
    verdicts = {c.verdict for c in checks}
    verdict = FAIL if FAIL in verdicts else INCONCLUSIVE if INCONCLUSIVE in verdicts else PASS
    settle = [c.images_to_settle for c in checks if c.verdict == INCONCLUSIVE]
    float_model = float_model_check(y_true, reference, limits)
    gate = {"verdict": verdict, "passed": verdict == PASS and float_model["learned"], "n_images": n,
            "checks": [asdict(c) for c in checks], "limits": asdict(limits),
            "images_to_settle": None if not settle or None in settle else max(settle),
            "bootstrap": {"samples": samples, "seed": seed, "interval": "95% percentile"},
            "mcnemar": mcnemar(y_true, reference, candidate), "float_model": float_model}
    return {**gate, "failures": failure_lines(gate, name)}


def failure_lines(gate: dict, name: str) -> list[str]:
    """One line per failed check and per float-model problem: the float value, the quantized value, the
    estimate with its interval, and the limit."""
    lines = []
    for c in gate["checks"]:
        if c["verdict"] != FAIL:
            continue
        ci = f"95% CI {c['low']:.4f} to {c['high']:.4f}"
        if c["higher_is_better"]:
            lines.append(f"cascade agreement with float: float 1.0000, {name} {c['quantized_value']:.4f} ({ci}), "
                         f"below limit {c['limit']:.4f}")
        else:
            title = "cascade accuracy" if c["name"] == "accuracy" else c["name"]
            lines.append(f"{title}: float {c['float_value']:.4f}, {name} {c['quantized_value']:.4f}, drop "
                         f"{c['estimate']:.4f} ({ci}) > limit {c['limit']:.4f}")
    return lines + gate["float_model"]["problems"]


def verdict_line(gate: dict) -> str:
    """The gate's verdict in one line, with what to do when it is not a pass."""
    n = gate["n_images"]
    if gate.get("search_found") is False:  # cxr-convert --search: nothing passed on the validation images
        return "NOT DEPLOYABLE: no quantization the search tried passed on the validation images (see above)"
    if gate["verdict"] == PASS and gate["passed"]:
        return f"PASS: deployable (every check's 95% interval is within its limit on {n} images)"
    if gate["verdict"] == PASS:
        return "PASS on parity, but NOT DEPLOYABLE: the float model itself is not worth deploying (see above)"
    if gate["verdict"] == FAIL:
        return f"FAIL: NOT DEPLOYABLE (a check's estimate is past its limit on {n} images)"
    settle = gate["images_to_settle"]
    more = (f"about {settle:,} images would settle it at the observed rates" if settle else
            "an estimate sits on its limit, so no number of images would settle it")
    return (f"INCONCLUSIVE: NOT DEPLOYABLE ({n} images cannot tell whether every check is within its limit; "
            f"{more}: add labelled images with --parity-data)")
