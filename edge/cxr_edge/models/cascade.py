"""The cascade rule, shared by training evaluation, the parity check and the box.

Stage 1 gives p(abnormal); at or above the threshold the image is abnormal and stage 2 picks the disease.
Reported probabilities: p_normal = 1 - p(abnormal); each disease's p = p(abnormal) x its stage 2 probability.
"""

from __future__ import annotations

import numpy as np

from cxr_edge.labels import LABELS, STAGE2_LABELS


def combine(p_abnormal: np.ndarray, stage2: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Final label indices (into LABELS) and the (N, 4) probabilities in LABELS order."""
    p_abnormal = np.asarray(p_abnormal, dtype=np.float64).reshape(-1)
    stage2 = np.asarray(stage2, dtype=np.float64).reshape(len(p_abnormal), len(STAGE2_LABELS))
    probs = np.concatenate([(1.0 - p_abnormal)[:, None], p_abnormal[:, None] * stage2], axis=1)
    disease = 1 + np.argmax(stage2, axis=1)  # LABELS[1:] == STAGE2_LABELS
    labels = np.where(p_abnormal >= threshold, disease, 0)
    assert LABELS[1:] == STAGE2_LABELS
    return labels, probs


def sensitivity_threshold(p_abnormal: np.ndarray, is_abnormal: np.ndarray, target: float) -> float:
    """The highest threshold whose sensitivity for abnormal reaches `target` on these scores."""
    scores = np.sort(np.asarray(p_abnormal, dtype=np.float64)[np.asarray(is_abnormal, dtype=bool)])[::-1]
    if scores.size == 0:
        raise ValueError("no abnormal images to choose a threshold on")
    needed = int(np.ceil(target * scores.size - 1e-9))
    return float(scores[max(needed, 1) - 1])
