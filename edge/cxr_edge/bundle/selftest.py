"""Known answers: before a bundle's models answer for anyone, they must reproduce the outputs that the converting
machine's interpreter gave for a few reference inputs shipped in the bundle (selftest.npz).

An interpreter can be wrong on one platform and right on another (LiteRT 2.1-2.3's int8 XNNPACK kernels on an
emulated SME-capable arm64 CPU labelled every image normal), and nothing else on the box would notice. So every command that runs
the models checks them first, on the very interpreters it then uses, and falls back to TFLite's built-in
kernels when the default ones (XNNPACK) fail; when every kernel set fails it refuses to run.

Differences are counted in steps of each output's quantization (its scale; 1/255 of the output's largest
reference value for a float output), so one tolerance serves probabilities and features alike.
"""

from __future__ import annotations

import io
import platform
import time
from dataclasses import dataclass

import numpy as np

from cxr_edge.bundle.files import SELFTEST_FILE
from cxr_edge.models.interpreter import KERNELS, TFLiteModel, backend, predict_in_batches

STAGES = ("stage1", "stage2")
# Largest difference allowed, in quantization steps. Legitimate differences measured (docs/box.md, "Self-test"):
# XNNPACK across LiteRT versions and aarch64/x86_64 up to 3 steps, built-in kernels vs XNNPACK up to 11; the
# one fault found (LiteRT >= 2.1's XNNPACK on qemu 7.2's SME-capable CPU) 34 steps on the 3 kB probe model and
# 216-255 on a trained tiny bundle.
TOLERANCE_STEPS = 16.0
BATCH = 8  # the batch size classify runs, so the self-test exercises the very allocation that then serves
# The interpreter versions that `make pi-check` (or a real machine) showed giving the reference answers, per
# machine; pyproject.toml installs these. Named in the refusal message as what to install.
VERIFIED = {"aarch64": "ai-edge-litert==2.3.0", "x86_64": "ai-edge-litert==2.3.0"}
_KERNEL_NAMES = {"default": "the default kernels", "builtin": "TFLite's built-in kernels"}


class SelfTestError(RuntimeError):
    """Every kernel set the interpreter offers failed the bundle's known-answer test."""

    def __init__(self, message: str, outcomes: tuple["Outcome", ...]):
        super().__init__(message)
        self.selftest = SelfTest(outcomes)


@dataclass(frozen=True)
class KnownAnswers:
    """Reference inputs (N, size, size, 1) uint8 and each stage's outputs for them, in TFLiteModel's order."""

    inputs: np.ndarray
    outputs: dict[str, list[np.ndarray]]

    def to_bytes(self) -> bytes:
        arrays = {"inputs": self.inputs}
        for stage, outs in self.outputs.items():
            arrays.update({f"{stage}_{i}": np.asarray(out, np.float32) for i, out in enumerate(outs)})
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "KnownAnswers":
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:  # never unpickle bundle content
            keys = set(npz.files)
            if "inputs" not in keys:
                raise ValueError(f"{SELFTEST_FILE} holds no reference inputs")
            outputs = {stage: [npz[f"{stage}_{i}"] for i in range(len(keys)) if f"{stage}_{i}" in keys]
                       for stage in STAGES}
            return cls(npz["inputs"], outputs)


def answers_of(models: dict[str, TFLiteModel], inputs: np.ndarray) -> KnownAnswers:
    """What `models` give for `inputs`: the conversion's reference, and the box's check."""
    return KnownAnswers(inputs, {stage: predict_in_batches(models[stage], inputs, BATCH) for stage in STAGES})


@dataclass(frozen=True)
class Outcome:
    """One kernel set's result on the known answers."""

    kernels: str  # "default" or "builtin"
    xnnpack: bool  # as the interpreter reports it
    max_steps: float
    where: str  # the output and reference input with the largest difference
    labels_checked: int  # stage labels compared (those whose reference margin is clear of the tolerance)
    label_mismatches: int
    milliseconds: float

    @property
    def passed(self) -> bool:
        return self.max_steps <= TOLERANCE_STEPS and self.label_mismatches == 0

    @property
    def name(self) -> str:
        return "XNNPACK" if self.xnnpack else _KERNEL_NAMES[self.kernels]

    def describe(self) -> str:
        exact = " (bit-exact)" if self.max_steps == 0 else ""
        labels = f", {self.label_mismatches} of {self.labels_checked} labels differ" if self.label_mismatches else ""
        return (f"{self.name}: {'passed' if self.passed else 'FAILED'}, largest difference {self.max_steps:g} "
                f"steps{exact} ({self.where}; limit {TOLERANCE_STEPS:g}){labels}")

    def as_dict(self) -> dict:
        return {"kernels": self.kernels, "xnnpack": self.xnnpack, "passed": self.passed,
                "max_steps": self.max_steps, "where": self.where, "labels_checked": self.labels_checked,
                "label_mismatches": self.label_mismatches, "milliseconds": round(self.milliseconds, 1)}


@dataclass(frozen=True)
class SelfTest:
    """The kernel sets tried, in order; the last one is in use. No outcomes: the bundle carries no self-test."""

    outcomes: tuple[Outcome, ...]
    format_version: int = 3

    @property
    def status(self) -> str:
        if not self.outcomes:
            return "absent"
        if not self.outcomes[-1].passed:
            return "failed"
        return "passed" if len(self.outcomes) == 1 else "fallback"

    @property
    def in_use(self) -> Outcome | None:
        return self.outcomes[-1] if self.outcomes else None

    def warning(self) -> str | None:
        """The line every output form carries when the answers are not simply right."""
        if self.status == "absent":
            return (f"WARNING: this bundle (format {self.format_version}) carries no self-test, so nothing checked "
                    "that this box computes what the converting machine did; convert it again with a current "
                    "cxr-convert.")
        if self.status == "fallback":
            failed, used = self.outcomes[0], self.outcomes[-1]
            return (f"WARNING: {failed.name} failed the bundle's self-test on {_platform()} (largest difference "
                    f"{failed.max_steps:g} steps, limit {TOLERANCE_STEPS:g}); results come from {used.name} "
                    f"instead, which pass (largest difference {used.max_steps:g} steps). {_advice()}")
        return None

    def summary(self) -> str:
        if not self.outcomes:
            return "self-test: none in this bundle"
        return "self-test: " + "; then ".join(o.describe() for o in self.outcomes)

    def as_dict(self) -> dict:
        return {"status": self.status, "interpreter": str(backend()), "machine": platform.machine(),
                "tolerance_steps": TOLERANCE_STEPS, "tried": [o.as_dict() for o in self.outcomes]}


def check(answers: KnownAnswers, models: dict[str, TFLiteModel]) -> Outcome:
    """Run the reference inputs through `models` and compare every output with the known answers."""
    start = time.perf_counter()
    got = answers_of(models, answers.inputs)
    milliseconds = 1000 * (time.perf_counter() - start)
    max_steps, where, checked, mismatches = 0.0, "all outputs", 0, 0
    for stage in STAGES:
        expected_outs, got_outs = answers.outputs[stage], got.outputs[stage]
        if len(expected_outs) != len(got_outs):
            raise ValueError(f"{SELFTEST_FILE} holds {len(expected_outs)} {stage} outputs, the model gives "
                             f"{len(got_outs)}: the self-test was made for other models")
        for i, (expected, actual) in enumerate(zip(expected_outs, got_outs)):
            step = _step(models[stage].outputs[i].scale, expected)
            steps = np.abs(actual.reshape(len(actual), -1) - expected.reshape(len(expected), -1)) / step
            worst = np.unravel_index(int(np.argmax(steps)), steps.shape)
            if steps[worst] > max_steps:
                max_steps = round(float(steps[worst]), 2)
                kind = "probabilities" if i == 0 else "features"
                where = f"{stage} {kind}, reference input {worst[0]}"
        c, m = _label_check(answers.outputs[stage][0], got.outputs[stage][0], models[stage].outputs[0].scale)
        checked, mismatches = checked + c, mismatches + m
    return Outcome(models["stage1"].kernels, models["stage1"].xnnpack or models["stage2"].xnnpack, max_steps,
                   where, checked, mismatches, milliseconds)


def _step(scale: float, expected: np.ndarray) -> float:
    """One quantization step of an output: its scale, or 1/255 of its largest reference value when float."""
    if scale > 0:
        return scale
    return max(float(np.abs(expected).max()), 1e-12) / 255


def _label_check(expected: np.ndarray, actual: np.ndarray, scale: float) -> tuple[int, int]:
    """(labels compared, labels that differ): only where the reference's top two probabilities are further
    apart than twice the tolerance, since within it a legitimate difference may swap them."""
    ordered = np.sort(expected, axis=1)
    clear = (ordered[:, -1] - ordered[:, -2]) > 2 * TOLERANCE_STEPS * _step(scale, expected)
    differ = expected.argmax(axis=1) != actual.argmax(axis=1)
    return int(clear.sum()), int((clear & differ).sum())


def trusted_models(model_files: dict[str, bytes], answers: KnownAnswers | None, threads: int | None = None,
                   format_version: int = 3) -> tuple[dict[str, TFLiteModel], SelfTest]:
    """The two stages' interpreters on the first kernel set that passes the known-answer test, and the test's
    record. Without known answers (an older bundle) the default kernels, unchecked. Raises SelfTestError when
    no kernel set passes."""
    outcomes: list[Outcome] = []
    for kernels in KERNELS:
        models = {stage: TFLiteModel(model_files[f"{stage}.tflite"], threads, kernels) for stage in STAGES}
        if answers is None:
            return models, SelfTest((), format_version)
        outcomes.append(check(answers, models))
        if outcomes[-1].passed:
            return models, SelfTest(tuple(outcomes), format_version)
        if not outcomes[-1].xnnpack:
            break  # the default kernels were already the built-in ones: nothing else to try
    raise SelfTestError(_refusal(outcomes), tuple(outcomes))


def _platform() -> str:
    return f"{backend()} on {platform.machine()}"


def _advice() -> str:
    verified = VERIFIED.get(platform.machine())
    where = f"the version verified on {platform.machine()} is {verified}" if verified else \
        f"no interpreter version is verified on {platform.machine()} yet"
    return f"Interpreter {_platform()}: {where} (docs/box.md, \"Verified interpreters\")."


def _refusal(outcomes: list[Outcome]) -> str:
    tried = "; ".join(o.describe() for o in outcomes)
    install = VERIFIED.get(platform.machine(), VERIFIED["x86_64"])
    return (f"the bundle's self-test failed on every kernel set of this interpreter, so its results cannot be "
            f"trusted on this box: {tried}. {_advice()} Install that version (`pip install '{install}'`) and "
            "check again with `cxr-edge info BUNDLE`; --allow-unverified does not skip this check.")
