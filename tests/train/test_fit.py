"""A tiny end-to-end `fit` on synthetic data, and `evaluate` agreeing with what the run wrote."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cxr_edge.models.cascade import combine, sensitivity_threshold
from cxr_train.cli import main

RUN_FILES = ["config.json", "split.csv", "stage1.keras", "stage2.keras", "history_stage1.csv",
             "history_stage2.csv", "curves.png", "eval/confusion.csv", "eval/confusion.png",
             "eval/metrics.json", "eval/report.md"]


@pytest.mark.slow
def test_fit_writes_every_file(tiny_run):
    for name in RUN_FILES:
        assert (tiny_run / name).is_file(), name
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["status"] == "finished" and config["preset"] == "tiny" and config["image_size"] == 64
    assert config["synthetic"] is True and 0 <= config["stage1_threshold"] <= 1
    assert config["counts"]["test"] == {"normal": 4, "lung_opacity": 4, "viral_pneumonia": 4, "covid19": 4}
    assert config["throughput"]["stage1"]["train_images_per_s"] > 0
    history = (tiny_run / "history_stage1.csv").read_text().splitlines()
    assert history[0].startswith("epoch") and "val_loss" in history[0] and len(history) >= 3  # frozen + fine-tune
    confusion = (tiny_run / "eval" / "confusion.csv").read_text().splitlines()
    assert confusion[0] == "true \\ predicted,normal,lung_opacity,viral_pneumonia,covid19,total"
    assert confusion[-1].startswith("total,") and confusion[-1].endswith(",16")
    report = (tiny_run / "eval" / "report.md").read_text()
    assert "Table 3" in report and "not a diagnosis" in report


@pytest.mark.slow
def test_evaluate_agrees_with_the_run(tiny_run):
    written = json.loads((tiny_run / "eval" / "metrics.json").read_text())
    result = CliRunner().invoke(main, ["evaluate", str(tiny_run)])
    assert result.exit_code == 0, result.output
    again = json.loads((tiny_run / "eval" / "metrics.json").read_text())
    assert again["cascade"]["confusion"] == written["cascade"]["confusion"]
    assert again["cascade"]["accuracy"] == pytest.approx(written["cascade"]["accuracy"])
    result = CliRunner().invoke(main, ["evaluate", str(tiny_run), "--split", "all"])
    assert result.exit_code == 0, result.output
    assert json.loads((tiny_run / "eval-all" / "metrics.json").read_text())["n_images"] == 120


@pytest.mark.slow
def test_finished_run_is_not_overwritten(tiny_run, synth_medium):
    result = CliRunner().invoke(main, ["fit", str(synth_medium), "--out", str(tiny_run), "--preset", "tiny"])
    assert result.exit_code == 2
    assert "already holds a finished run" in result.output and "--overwrite" in result.output


@pytest.mark.parametrize("args, message", [
    (["fit", "/nonexistent/data", "--out", "{tmp}/r"], "does not exist"),
    (["fit", "{data}", "--out", "{tmp}/r", "--preset", "tiny", "--init-weights", "{tmp}/missing.npy"], "not found"),
    (["evaluate", "{tmp}"], "not a finished training run"),
])
def test_errors_are_one_line_exit_2(tmp_path, synth_small, args, message):
    args = [a.format(tmp=tmp_path, data=synth_small) for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_unwritable_run_folder(tmp_path, synth_small):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the run folder should go")
    result = CliRunner().invoke(main, ["fit", str(synth_small), "--out", str(blocker / "run"), "--preset", "tiny"])
    assert result.exit_code == 2 and "cannot write to run folder" in result.output


def test_sensitivity_threshold_reaches_the_target():
    rng = np.random.default_rng(0)
    scores = rng.uniform(size=200)
    abnormal = rng.uniform(size=200) < 0.6
    for target in (0.5, 0.9, 0.95, 1.0):
        t = sensitivity_threshold(scores, abnormal, target)
        reached = (scores[abnormal] >= t).mean()
        assert reached >= target
        # the highest such threshold: any higher one misses the target
        higher = np.min(scores[abnormal][scores[abnormal] > t], initial=2.0)
        assert higher == 2.0 or (scores[abnormal] >= higher).mean() < target


def test_cascade_rule():
    labels, probs = combine(np.array([0.2, 0.7, 0.5]), np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3]]), 0.5)
    assert labels.tolist() == [0, 1, 2]
    np.testing.assert_allclose(probs[1], [0.3, 0.42, 0.21, 0.07])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
