"""The bundle's known answers (cxr_edge.bundle.selftest), made on the converting machine: reference inputs that hold
no patient pixels, and what the converted models give for them through cxr_edge's own interpreter code."""

from __future__ import annotations

import platform

import numpy as np

from cxr_edge.bundle.files import SELFTEST_FILE
from cxr_edge.bundle.selftest import STAGES, TOLERANCE_STEPS, KnownAnswers, answers_of, check
from cxr_edge.inputs.images import to_model_input
from cxr_edge.labels import LABELS
from cxr_edge.models.interpreter import TFLiteModel, backend
from cxr_train.synth import image_rng, make_image

CANDIDATES_PER_CLASS = 4  # generated radiographs tried, per class
RADIOGRAPHS = 6  # of those, the ones kept: the clearest labels, so a wrong label stands out
SEED = 8128  # the synthetic generator's seed: fixed, so bundles of one model carry the same inputs


def reference_inputs(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(candidate radiographs, patterns), each (N, size, size, 1) uint8. Any input shows a broken kernel; the
    radiographs also exercise the labels, the patterns the extremes (full-range gradient, pixel noise)."""
    radiographs = [to_model_input(make_image(label, 299, image_rng(SEED, label, i)).pixels, size)
                   for i in range(CANDIDATES_PER_CLASS) for label in LABELS]
    ramp = np.tile(np.linspace(0, 255, size), (size, 1)).astype(np.uint8)
    noise = np.random.default_rng(SEED).integers(0, 256, (size, size), dtype=np.uint8)
    return np.stack(radiographs), np.stack([ramp, noise])[..., np.newaxis]


def _clearest(answers: KnownAnswers, n: int) -> np.ndarray:
    """Indices of the n inputs whose smallest top-two probability margin over both stages is largest."""
    margins = []
    for stage in STAGES:
        ordered = np.sort(answers.outputs[stage][0], axis=1)
        margins.append(ordered[:, -1] - ordered[:, -2])
    return np.sort(np.argsort(-np.min(margins, axis=0), kind="stable")[:n])


def make_selftest(model_files: dict[str, bytes], size: int) -> tuple[bytes, dict]:
    """selftest.npz's bytes and the manifest's description of it."""
    models = {stage: TFLiteModel(model_files[f"{stage}.tflite"]) for stage in STAGES}
    radiographs, patterns = reference_inputs(size)
    keep = _clearest(answers_of(models, radiographs), RADIOGRAPHS)
    answers = answers_of(models, np.concatenate([radiographs[keep], patterns]))
    builtin = check(answers, {stage: TFLiteModel(model_files[f"{stage}.tflite"], kernels="builtin")
                              for stage in STAGES})
    info = {"file": SELFTEST_FILE, "inputs": len(answers.inputs),
            "made_of": f"{RADIOGRAPHS} generated radiographs (cxr-train synth, seed {SEED}; no patient pixels), "
                       "a gray ramp and uniform noise",
            "reference": {"interpreter": str(backend()), "machine": platform.machine(),
                          "xnnpack": any(m.xnnpack for m in models.values())},
            # the same known answers on this machine's built-in kernels: a legitimate difference, for the record
            "builtin_kernels_here": {"max_steps": builtin.max_steps, "passed": builtin.passed},
            "tolerance_steps": TOLERANCE_STEPS}
    return answers.to_bytes(), info
