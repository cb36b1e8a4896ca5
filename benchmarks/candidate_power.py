"""How many reviewed images shadow mode's comparison needs: for a candidate bundle exactly as good as the active
one, the share of simulated clinics' reviews on which each verdict comes out, at each number of reviewed images.

    python -m benchmarks.candidate_power [--abnormal-share 0.3] [--correlation 0.8] [--runs 100] [--margin 0.05]

Simulated, not measured on a model: each reviewed image is abnormal with probability `--abnormal-share` (its
disease one of three, evenly); each bundle's abnormal score is a shared latent (what the image shows) plus noise of
its own, the two bundles equally good (the same AUC) and their scores correlated by `--correlation` (two versions of
one product); stage 2 picks the right disease 80% of the time for both. Each bundle is calibrated on the reviews at
sensitivity 0.95, as `cxr-edge candidate` does, and the comparison runs with margins of `--margin` (the default,
5 points, is the node's default for sensitivity, specificity and agreement with readers) through cxr_edge.site.compare, the node's own code, with
seeded random numbers: the table is the same on any machine.
"""

from __future__ import annotations

import argparse

import numpy as np

from cxr_edge.labels import LABELS
from cxr_edge.site.calibrate import calibration_floors
from cxr_edge.site.compare import compare

SIZES = (100, 200, 400, 800, 1600, 3200)
TARGET = 0.95


def simulate(n: int, abnormal_share: float, correlation: float, seed: int):
    """Truth and both bundles' (N, 4) probabilities for one clinic's reviewed images."""
    rng = np.random.default_rng(seed)
    abnormal = rng.random(n) < abnormal_share
    disease = rng.integers(0, 3, n)
    truth = [LABELS[1 + d] if a else LABELS[0] for a, d in zip(abnormal, disease)]
    latent = np.where(abnormal, 1.6, 0.0) + rng.normal(0, np.sqrt(correlation), n)
    probs = []
    for _ in range(2):
        score = latent + rng.normal(0, np.sqrt(1 - correlation), n)
        p_abnormal = 1 / (1 + np.exp(-(score - 0.8) * 2))
        right = rng.random(n) < 0.8
        picked = np.where(right, disease, (disease + rng.integers(1, 3, n)) % 3)
        stage2 = np.full((n, 3), 0.1)
        stage2[np.arange(n), picked] = 0.8
        probs.append(np.concatenate([(1 - p_abnormal)[:, None], p_abnormal[:, None] * stage2], 1))
    return truth, abnormal, probs


def verdict(n: int, abnormal_share: float, correlation: float, seed: int, margin: float = 0.05) -> str:
    truth, abnormal, probs = simulate(n, abnormal_share, correlation, seed)
    if abnormal.sum() < 2 or (~abnormal).sum() < 2:
        return "INCONCLUSIVE"
    floors = calibration_floors(TARGET)
    ready = abnormal.sum() >= floors["abnormal"] and (~abnormal).sum() >= floors["normal"]
    margins = {"sensitivity": margin, "specificity": margin, "agreement with readers": margin}
    return compare(truth, probs[0], probs[1], (None, None), margins, {"ready": ready, "floors": floors}, TARGET,
                   seed=seed)["verdict"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--abnormal-share", type=float, default=0.3)
    parser.add_argument("--correlation", type=float, default=0.8)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--margin", type=float, default=0.05)
    args = parser.parse_args()
    print(f"equally good bundles, scores correlated {args.correlation}, {args.abnormal_share:.0%} abnormal, "
          f"{args.runs} simulated clinics per size; margins {args.margin}")
    print("reviewed images   PASS   FAIL   INCONCLUSIVE")
    for n in SIZES:
        seen = [verdict(n, args.abnormal_share, args.correlation, seed, args.margin) for seed in range(args.runs)]
        shares = {v: seen.count(v) / len(seen) for v in ("PASS", "FAIL", "INCONCLUSIVE")}
        print(f"{n:15d}  {shares['PASS']:5.0%}  {shares['FAIL']:5.0%}  {shares['INCONCLUSIVE']:12.0%}")


if __name__ == "__main__":
    main()
