"""The known-answer self-test: made by cxr-convert, checked by every cxr-edge command that runs the models,
falling back to the built-in kernels when the default ones are wrong and refusing when every kernel set is."""

import csv
import io
import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cxr_edge.bundle.files import FORMAT_VERSION, SELFTEST_FILE
from cxr_edge.bundle.load import BundleError, load_bundle
from cxr_edge.bundle.selftest import (
    TOLERANCE_STEPS,
    VERIFIED,
    KnownAnswers,
    SelfTestError,
    _label_check,
    check,
    trusted_models,
)
from cxr_edge.cli import main
from cxr_edge.models.interpreter import TFLiteModel, backend
from cxr_edge.models.probe import probe

from tests.bundle_edits import edited_copy, older_format

ROOT = Path(__file__).resolve().parents[3]


def _classify(stick, bundle, *args):
    return CliRunner().invoke(main, ["classify", str(stick), "--model", str(bundle), *args])


def _fault(kernels: tuple[str, ...]):
    """A TFLiteModel.predict that is wrong on the given kernel sets, as LiteRT 2.3's XNNPACK was under aarch64
    emulation: every output's values rotated by one class (or feature)."""
    honest = TFLiteModel.predict

    def predict(self, pixels):
        outputs = honest(self, pixels)
        return [np.roll(out, 1, axis=-1) for out in outputs] if self.kernels in kernels else outputs

    return predict


@pytest.mark.slow
def test_the_bundle_carries_known_answers_that_pass_here(edge_bundle):
    manifest = json.loads((edge_bundle / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION == 3
    assert SELFTEST_FILE in manifest["files"] and manifest["selftest"]["inputs"] == 8
    answers = load_bundle(edge_bundle).known_answers()
    assert answers.inputs.dtype == np.uint8 and answers.inputs.shape == (8, 64, 64, 1)
    assert [len(answers.outputs[s]) for s in ("stage1", "stage2")] == [2, 1]  # stage 1 also gives features
    assert manifest["selftest"]["reference"]["interpreter"] == str(backend())
    # the same machine and interpreter: the answers come back exactly
    models, selftest = trusted_models(load_bundle(edge_bundle).models, answers)
    assert selftest.status == "passed" and selftest.in_use.max_steps == 0 and models["stage1"].kernels == "default"
    info = CliRunner().invoke(main, ["info", str(edge_bundle)])
    assert info.exit_code == 0, info.output
    assert "selftest.npz: checksum ok" in info.output
    assert re.search(r"self-test: (XNNPACK|TFLite's built-in kernels): passed, largest difference 0 steps "
                     r"\(bit-exact\)", info.output)
    assert f"interpreter here: {backend()}" in info.output


@pytest.mark.slow
def test_expected_outputs_the_models_do_not_give_are_refused(edge_bundle, usb_stick, synth_small, tmp_path):
    answers = load_bundle(edge_bundle).known_answers()
    wrong = KnownAnswers(answers.inputs, {**answers.outputs, "stage2": [1.0 - answers.outputs["stage2"][0]]})
    bad = edited_copy(edge_bundle, tmp_path / "bad", files={SELFTEST_FILE: wrong.to_bytes()})
    load_bundle(bad)  # the checksums match: only running the models can tell
    for extra in ([], ["--allow-unverified"]):
        result = _classify(usb_stick, bad, "--format", "csv", *extra)
        assert result.exit_code == 2
        assert "self-test failed on every kernel set" in result.output
        assert f"{backend()}" in result.output and "largest difference" in result.output
        assert "stage2 probabilities" in result.output and "ai-edge-litert==" in result.output
        assert "Verified interpreters" in result.output
    info = CliRunner().invoke(main, ["info", str(bad)])
    assert info.exit_code == 2 and "FAILED" in info.output
    for command in (["evaluate", str(synth_small)], ["bench", "-n", "2"]):
        result = CliRunner().invoke(main, [*command, "--model", str(bad)])
        assert result.exit_code == 2 and "self-test failed" in result.output


@pytest.mark.slow
def test_a_fault_in_the_default_kernels_falls_back_to_the_builtin_ones(edge_bundle, usb_stick, synth_small,
                                                                      tmp_path, monkeypatch):
    honest = json.loads(_classify(usb_stick, edge_bundle, "--format", "json").stdout)
    monkeypatch.setattr(TFLiteModel, "predict", _fault(("default",)))
    report = tmp_path / "report.csv"
    result = _classify(usb_stick, edge_bundle, "--format", "json", "--output", str(report))
    assert result.exit_code == 1  # the stick's unreadable files, as without the fault
    data = json.loads(result.stdout)
    selftest = data["bundle"]["selftest"]
    assert selftest["status"] == "fallback" and [t["kernels"] for t in selftest["tried"]] == ["default", "builtin"]
    assert not selftest["tried"][0]["passed"] and selftest["tried"][1]["passed"]
    warning = next(w for w in data["warnings"] if "self-test" in w)
    assert "failed the bundle's self-test" in warning and "TFLite's built-in kernels instead" in warning
    # every other form carries the warning too
    assert f"# {warning}" in report.read_text()
    table = _classify(usb_stick, edge_bundle, "--format", "table").output
    assert " ".join(warning.split()) in " ".join(table.split())  # the table wraps it at 100 columns
    # the rows come from the built-in kernels, which agree with the default ones wherever the label is clear of
    # the differences the two kernel sets may legitimately have (up to the tolerance on each probability)
    fallen_back = {r["path"]: r["label"] for r in data["results"]}
    clear = [r for r in honest["results"] if r["label"] and _margin(r) > 2 * TOLERANCE_STEPS / 256]
    assert all(fallen_back[r["path"]] == r["label"] for r in clear)
    assert [r["path"] for r in data["results"]] == [r["path"] for r in honest["results"]]
    evaluate = CliRunner().invoke(main, ["evaluate", str(synth_small), "--model", str(edge_bundle)])
    assert warning.split(";")[0] in evaluate.output
    bench = json.loads(CliRunner().invoke(main, ["bench", "-n", "2", "--model", str(edge_bundle), "--format",
                                                 "json"]).output)
    assert bench["selftest"]["status"] == "fallback"


def _margin(row) -> float:
    probs = sorted((v for k, v in row.items() if k.startswith("p_")), reverse=True)
    return probs[0] - probs[1]


@pytest.mark.slow
def test_a_fault_on_every_kernel_set_is_refused(edge_bundle, usb_stick, monkeypatch):
    monkeypatch.setattr(TFLiteModel, "predict", _fault(("default", "builtin")))
    result = _classify(usb_stick, edge_bundle, "--allow-unverified")
    assert result.exit_code == 2
    assert "self-test failed on every kernel set" in result.output and "FAILED" in result.output
    with pytest.raises(SelfTestError) as caught:
        trusted_models(load_bundle(edge_bundle).models, load_bundle(edge_bundle).known_answers())
    assert caught.value.selftest.status == "failed"


@pytest.mark.slow
def test_format_2_bundles_load_and_say_they_have_no_self_test(edge_bundle, usb_stick, tmp_path):
    old = older_format(edge_bundle, tmp_path / "v2", 2)
    assert load_bundle(old).known_answers() is None
    info = CliRunner().invoke(main, ["info", str(old)])
    assert info.exit_code == 0 and "self-test: none in this bundle" in info.output
    result = _classify(usb_stick, old, "--format", "csv")
    assert result.exit_code == 1 and "# WARNING: this bundle (format 2) carries no self-test" in result.output
    rows = list(csv.DictReader(io.StringIO("\n".join(l for l in result.stdout.splitlines() if l[:1] != "#"))))
    assert rows and any(r["label"] for r in rows)
    # a format 3 manifest that drops its self-test is not an older bundle: it is refused
    stripped = edited_copy(edge_bundle, tmp_path / "stripped", lambda m: m["files"].pop(SELFTEST_FILE))
    with pytest.raises(BundleError, match="must carry its self-test"):
        load_bundle(stripped)


def test_steps_are_counted_in_each_outputs_quantization():
    class Model:  # check() needs only the models' outputs' scales, kernels and XNNPACK flag, and predict()
        def __init__(self, outputs, scale):
            self.kernels, self.xnnpack, self._outputs = "default", False, outputs
            self.outputs = [type("Spec", (), {"scale": scale})() for _ in outputs]

        def predict(self, pixels):
            return [out[:len(pixels)] for out in self._outputs]

    inputs = np.zeros((8, 4, 4, 1), np.uint8)
    probs = np.tile([[0.9, 0.1]], (8, 1)).astype(np.float32)
    answers = KnownAnswers(inputs, {"stage1": [probs], "stage2": [probs]})
    same = check(answers, {"stage1": Model([probs], 1 / 256), "stage2": Model([probs], 1 / 256)})
    assert same.passed and same.max_steps == 0
    moved = probs + np.float32(3 / 256) * np.array([-1, 1], np.float32)
    near = check(answers, {"stage1": Model([moved], 1 / 256), "stage2": Model([probs], 1 / 256)})
    assert near.passed and near.max_steps == 3 and near.where == "stage1 probabilities, reference input 0"
    far = probs + np.float32((TOLERANCE_STEPS + 1) / 256) * np.array([-1, 1], np.float32)
    assert not check(answers, {"stage1": Model([probs], 1 / 256), "stage2": Model([far], 1 / 256)}).passed
    # float outputs: a step is 1/255 of the largest reference value
    assert check(answers, {"stage1": Model([moved], 0.0), "stage2": Model([probs], 0.0)}).max_steps == \
        pytest.approx(3 / 256 * 255 / 0.9, abs=0.01)


def test_labels_are_compared_only_where_the_reference_is_clear():
    expected = np.array([[0.9, 0.1], [0.52, 0.48], [0.2, 0.8]], np.float32)
    actual = np.array([[0.1, 0.9], [0.48, 0.52], [0.2, 0.8]], np.float32)
    assert _label_check(expected, actual, 1 / 256) == (2, 1)  # the 0.52/0.48 tie is within the tolerance


def test_the_probe_gives_its_known_answers_here():
    result = probe()
    assert result.max_steps == 0, result.describe()
    version = CliRunner().invoke(main, ["--version"]).output
    assert f"interpreter: {backend()}" in version and re.search(r"XNNPACK: (on|off); int8 probe: bit-exact", version)


def test_the_pinned_interpreter_is_the_one_the_refusal_names():
    """pyproject.toml installs, per machine, the LiteRT version that the self-test's advice calls verified."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for machine, requirement in VERIFIED.items():
        pins = [d for d in dependencies if d.startswith(requirement + ";") and f"'{machine}'" in d]
        assert pins, f"no dependency pins {requirement} on {machine}"
