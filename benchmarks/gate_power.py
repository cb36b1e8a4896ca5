"""How many parity images the gate needs: for int8 copies that change a given share of the float model's
labels, the share of simulated parity sets on which each verdict comes out, at each set size.

    python -m benchmarks.gate_power [--accuracy 0.9] [--right-to-wrong 0.63] [--wrong-to-right 0.15] [--runs 20]

Simulated, not measured on a model: labels balanced over the four classes, a float model right on
`--accuracy` of them, and a copy that changes a given share of the float labels. Of the changed labels,
`--right-to-wrong` turn a right label wrong and `--wrong-to-right` a wrong one right (the rest go from one
wrong label to another); the defaults are what the demo's int8 copy did (`make demo`: of 46 changed labels
among 4,480 parity images, 29 right to wrong and 7 wrong to right, on one machine). Every figure comes from
the gate's own functions and seeded random numbers, so the table is the same on any machine.
"""

from __future__ import annotations

import argparse

import numpy as np

from cxr_edge.site.gate import FAIL, INCONCLUSIVE, PASS, Limits, evaluate_gate, images_for_wilson_low

SIZES = (500, 1000, 2000, 4000, 6000)  # 6,000: the Database's validation and test splits together
RATES = (0.0, 0.005, 0.01, 0.015, 0.02)


def simulate(n: int, accuracy: float, changed: float, right_to_wrong: float, wrong_to_right: float,
             seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth, float labels and the copy's labels for one simulated parity set."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 4)
    reference = np.where(rng.random(n) < accuracy, y, (y + rng.integers(1, 4, n)) % 4)
    k = round(changed * n)
    k_rw, k_wr = round(k * right_to_wrong), round(k * wrong_to_right)
    right, wrong = rng.permutation(np.flatnonzero(reference == y)), rng.permutation(np.flatnonzero(reference != y))
    candidate = reference.copy()
    candidate[right[:k_rw]] = (y[right[:k_rw]] + rng.integers(1, 4, k_rw)) % 4
    candidate[wrong[:k_wr]] = y[wrong[:k_wr]]
    for i in wrong[k_wr:k - k_rw]:  # from one wrong label to another
        candidate[i] = min({0, 1, 2, 3} - {y[i], reference[i]})
    return y, reference, candidate


def verdict_shares(n: int, changed: float, args, limits: Limits) -> dict[str, float]:
    verdicts = [evaluate_gate(*simulate(n, args.accuracy, changed, args.right_to_wrong, args.wrong_to_right, seed),
                              limits, samples=1000, seed=seed)["verdict"] for seed in range(args.runs)]
    return {v: verdicts.count(v) / args.runs for v in (PASS, INCONCLUSIVE, FAIL)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accuracy", type=float, default=0.9, help="the float model's cascade accuracy")
    parser.add_argument("--right-to-wrong", type=float, default=29 / 46, help="share of changes that break a right label")
    parser.add_argument("--wrong-to-right", type=float, default=7 / 46, help="share of changes that mend a wrong label")
    parser.add_argument("--runs", type=int, default=20, help="simulated parity sets per cell")
    args = parser.parse_args()
    limits = Limits()
    print(f"Gate verdicts on simulated parity sets (float accuracy {args.accuracy}; of the changed labels "
          f"{args.right_to_wrong:.2f} right to wrong, {args.wrong_to_right:.2f} wrong to right; default limits: accuracy drop "
          f"<= {limits.max_accuracy_drop}, F1 drop <= {limits.max_f1_drop}, agreement >= {limits.min_agreement}; "
          f"{args.runs} sets per cell): PASS / INCONCLUSIVE / FAIL shares\n")
    print("| labels changed | agreement alone passes from | " + " | ".join(f"{n:,} images" for n in SIZES) + " |")
    print("|---|---|" + "---|" * len(SIZES))
    for rate in RATES:
        settle = images_for_wilson_low(1 - rate, limits.min_agreement) if 1 - rate > limits.min_agreement else None
        cells = []
        for n in SIZES:
            shares = verdict_shares(n, rate, args, limits)
            cells.append(" / ".join(f"{shares[v]:.2f}" for v in (PASS, INCONCLUSIVE, FAIL)))
        print(f"| {rate:.1%} | {f'{settle:,} images' if settle else 'never'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
