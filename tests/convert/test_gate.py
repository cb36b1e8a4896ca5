"""The parity gate's statistics against textbook cases, and its three verdicts on constructed prediction sets."""

import math

import numpy as np
import pytest

from cxr_edge.site.gate import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    Limits,
    evaluate_gate,
    failure_lines,
    images_for_wilson_low,
    mcnemar,
    paired_bootstrap,
    scores,
    verdict_line,
)
from cxr_edge.site.stats import Z95, wilson


def _labels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.arange(n) % 4)


def _with_changes(labels: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    """`labels` with `count` images moved to the next class."""
    changed = labels.copy()
    picks = np.random.default_rng(seed).choice(len(labels), count, replace=False)
    changed[picks] = (changed[picks] + 1) % 4
    return changed


def test_mcnemar_exact_p_value_of_a_textbook_table():
    """2 images right only in float, 8 right only in the copy: two-sided exact p = 2 P(X <= 2), X ~ Bin(10, 1/2)
    = 2 (1 + 10 + 45) / 1024 = 0.109375."""
    y = np.zeros(30, int)
    reference, candidate = np.zeros(30, int), np.zeros(30, int)
    reference[:8], candidate[8:10] = 1, 1  # 8 wrong in float only, 2 wrong in the copy only
    result = mcnemar(y, reference, candidate)
    assert (result["right_only_float"], result["right_only_quantized"]) == (2, 8)
    assert result["p_value"] == pytest.approx(112 / 1024, rel=1e-9)
    assert mcnemar(y, y, y)["p_value"] == 1.0  # no discordant image: nothing to tell apart


def test_wilson_bound_of_a_textbook_case_and_the_images_that_settle_agreement():
    """Newcombe (1998), case 81/263: 95% Wilson interval 0.2553 to 0.3662. Agreement of every image has the
    lower bound n / (n + z^2), at or above 0.98 from n = 0.98 z^2 / 0.02 = 188.2, so 189 images."""
    low, high = wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert images_for_wilson_low(1.0, 0.98) == math.ceil(0.98 * Z95 ** 2 / 0.02) == 189
    n = images_for_wilson_low(0.99, 0.98)
    assert wilson(0.99 * n, n)[0] >= 0.98 > wilson(0.99 * (n - 1), n - 1)[0]


def test_point_estimates_are_scikit_learns():
    from sklearn.metrics import accuracy_score, f1_score

    y = _labels(400)
    reference, candidate = _with_changes(y, 60, seed=2), _with_changes(y, 75, seed=3)
    acc_ref, acc_cand, f1_ref, f1_cand = scores(y, reference, candidate)
    assert acc_ref == accuracy_score(y, reference) and acc_cand == accuracy_score(y, candidate)
    np.testing.assert_allclose(f1_ref, f1_score(y, reference, average=None, labels=range(4)), rtol=1e-12)
    np.testing.assert_allclose(f1_cand, f1_score(y, candidate, average=None, labels=range(4)), rtol=1e-12)


def test_bootstrap_spread_matches_the_known_standard_error():
    """Each image's accuracy difference D is +1, -1 or 0; the mean's standard error is sqrt(var(D) / n).
    2000 resamples estimate a standard deviation to within about 1/sqrt(2 * 2000) = 1.6% of itself, so 10%
    is six of those; the same seed gives the same resamples."""
    y = _labels(1000)
    reference = _with_changes(y, 100, seed=4)
    candidate = _with_changes(reference, 40, seed=5)
    d = (reference == y).astype(float) - (candidate == y)
    drops, f1_drops = paired_bootstrap(y, reference, candidate, 2000, seed=0)
    assert drops.std() == pytest.approx(d.std() / math.sqrt(len(y)), rel=0.10)
    assert drops.mean() == pytest.approx(d.mean(), abs=4 * d.std() / math.sqrt(len(y) * 2000))
    assert f1_drops.shape == (2000, 4)
    again, _ = paired_bootstrap(y, reference, candidate, 2000, seed=0)
    np.testing.assert_array_equal(drops, again)


def test_identical_models_pass_with_enough_images_and_are_inconclusive_with_too_few():
    y = _labels(400)
    reference = _with_changes(y, 40)
    gate = evaluate_gate(y, reference, reference.copy(), Limits())
    assert gate["verdict"] == PASS and gate["passed"]
    assert all(c["low"] == c["high"] == 0.0 for c in gate["checks"] if not c["higher_is_better"])
    assert verdict_line(gate).startswith("PASS: deployable")

    few = evaluate_gate(y[:100], reference[:100], reference[:100].copy(), Limits())
    agreement = few["checks"][-1]
    assert few["verdict"] == INCONCLUSIVE and not few["passed"]
    assert agreement["verdict"] == INCONCLUSIVE and agreement["low"] == pytest.approx(100 / (100 + Z95 ** 2))
    assert few["images_to_settle"] == agreement["images_to_settle"] == 189
    assert "about 189 images would settle it" in verdict_line(few) and "--parity-data" in verdict_line(few)


def test_a_few_changed_labels_pass_on_many_images_and_are_inconclusive_on_fewer():
    """0.5% of labels changed: on 4,000 images every interval is inside its limit; on 400 (2 changes) the
    agreement's interval reaches below 0.98, and the gate says how many images would settle it."""
    y = _labels(4000)
    reference = _with_changes(y, 400)
    candidate = _with_changes(reference, 20, seed=7)
    gate = evaluate_gate(y, reference, candidate, Limits())
    assert gate["verdict"] == PASS, gate["checks"]
    assert {c["verdict"] for c in gate["checks"]} == {PASS}
    small = evaluate_gate(y[:400], reference[:400], _with_changes(reference[:400], 2, seed=8), Limits())
    assert small["verdict"] == INCONCLUSIVE
    settle = small["images_to_settle"]
    assert 400 < settle < 4000
    assert wilson(0.995 * settle, settle)[0] >= 0.98


def test_changed_labels_past_the_limit_fail_and_name_each_failed_check():
    y = _labels(1000)
    reference = _with_changes(y, 100)
    candidate = reference.copy()
    wrong = np.flatnonzero(reference == y)[:50]  # 50 images the float model gets right, the copy wrong
    candidate[wrong] = (candidate[wrong] + 1) % 4
    gate = evaluate_gate(y, reference, candidate, Limits())
    verdicts = {c["name"]: c["verdict"] for c in gate["checks"]}
    assert gate["verdict"] == FAIL and not gate["passed"]
    assert verdicts["accuracy"] == FAIL and verdicts["agreement"] == FAIL
    lines = failure_lines(gate, "int8")
    assert any(line.startswith("cascade accuracy: float 0.9000, int8 0.8500, drop 0.0500 (95% CI ") and
               line.endswith("> limit 0.0100") for line in lines), lines
    assert any(line.startswith("cascade agreement with float: float 1.0000, int8 0.9500 (95% CI ") and
               line.endswith("below limit 0.9800") for line in lines), lines
    assert verdict_line(gate).startswith("FAIL: NOT DEPLOYABLE")


def test_a_float_model_at_chance_is_flagged_on_its_own_line():
    """Labels drawn independently of the truth: accuracy near 0.25, the commonest class's share. Parity of
    such a model with its copy proves nothing, and the gate says so apart from the parity checks."""
    y = _labels(400)
    guesses = np.random.default_rng(9).integers(0, 4, 400)
    gate = evaluate_gate(y, guesses, guesses.copy(), Limits())
    assert gate["verdict"] == PASS and not gate["passed"]  # parity itself is perfect
    model = gate["float_model"]
    assert not model["learned"] and model["chance"] == 0.25 and model["low"] <= 0.25
    assert model["problems"][0].startswith("the float model is no better than chance: cascade accuracy ")
    assert model["problems"] == failure_lines(gate, "int8")
    assert "NOT DEPLOYABLE" in verdict_line(gate)
    learned = evaluate_gate(y, _with_changes(y, 100), _with_changes(y, 100), Limits(min_float_accuracy=0.8))
    assert learned["float_model"]["learned"] is False  # 0.75 is above chance but below the asked 0.8
    assert "below --min-float-accuracy 0.8000" in learned["float_model"]["problems"][0]
    assert evaluate_gate(y, _with_changes(y, 100), _with_changes(y, 100), Limits())["float_model"]["learned"]
