"""The few statistics the box needs for site calibration and run monitoring, in numpy (no scipy on the box):
Wilson intervals for proportions, the ROC AUC with DeLong's interval, and the exact two-sided binomial test.
tests/test_calibration.py checks each against scipy."""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for k successes in n trials (nan, nan when n is 0)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def images_for_margin(p: float, margin: float, z: float = Z95) -> int:
    """The fewest trials whose Wilson interval around a proportion near `p` is at most ±`margin` wide."""
    n = 1
    while True:
        lo, hi = wilson(round(p * n), n, z)
        if (hi - lo) / 2 <= margin:
            return n
        n += 1


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def auc_delong(positive: np.ndarray, negative: np.ndarray, z: float = Z95) -> tuple[float, float, float]:
    """ROC AUC (the probability that a positive scores above a negative, ties counting half) and its 95%
    interval from DeLong's variance (DeLong et al. 1988, with Sun and Xu's midrank computation), clipped to 0..1."""
    positive, negative = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    m, n = len(positive), len(negative)
    if m < 2 or n < 2:
        raise ValueError("the AUC's interval needs at least 2 positive and 2 negative images")
    combined = _midranks(np.concatenate([positive, negative]))
    v10 = (combined[:m] - _midranks(positive)) / n  # each positive: share of negatives below it
    v01 = 1.0 - (combined[m:] - _midranks(negative)) / m  # each negative: share of positives above it
    auc = float(v10.mean())
    se = math.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n)
    return auc, max(0.0, auc - z * se), min(1.0, auc + z * se)


def binomial_p_value(k: int, n: int, p: float) -> float:
    """Exact two-sided binomial test of k in n against proportion p: the probability of an outcome no more likely
    than k (as scipy.stats.binomtest)."""
    if n == 0:
        return 1.0
    if p <= 0.0 or p >= 1.0:
        return 1.0 if k == round(p * n) else 0.0
    ks = np.arange(n + 1)
    log_pmf = (math.lgamma(n + 1) - np.array([math.lgamma(i + 1) + math.lgamma(n - i + 1) for i in ks])
               + ks * math.log(p) + (n - ks) * math.log1p(-p))
    pmf = np.exp(log_pmf)
    return float(min(1.0, pmf[pmf <= pmf[k] * (1 + 1e-7)].sum()))
