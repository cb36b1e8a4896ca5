"""`cxr-edge` commands on tiny bundles: classify, info, evaluate, bench, and every error they promise."""

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from cxr_edge.cli import main
from cxr_edge.run.classify import sanity_problems
from cxr_edge.run.evaluate import confusion, table_metrics

pytestmark = pytest.mark.slow
EXPECTED_ROWS = ["blank.png", "not-an-image.jpg", "patient-0.png", "patient-1.png", "patient-3.jpg",
                 "strip.png", "truncated.png", "ward-2/patient-2.png", "zero.png"]


def _snapshot(folder):
    return sorted((p.relative_to(folder).as_posix(), p.lstat().st_size, p.lstat().st_mtime_ns)
                  for p in folder.rglob("*"))


def _csv_rows(text):
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


def test_classify_a_usb_stick(usb_stick, edge_bundle, tmp_path):
    before = _snapshot(usb_stick)
    report = tmp_path / "reports" / "today.csv"
    report.parent.mkdir()
    result = CliRunner().invoke(main, ["classify", str(usb_stick), "--model", str(edge_bundle), "--format", "csv",
                                       "--output", str(report)])
    assert result.exit_code == 1, result.output  # some files failed; the report is still complete
    assert _snapshot(usb_stick) == before  # the clinic's only copy is never written to
    rows = _csv_rows(report.read_text())
    assert [r["path"] for r in rows] == EXPECTED_ROWS  # sorted; hidden, ._, system folders, symlinks skipped
    by_path = {r["path"]: r for r in rows}
    assert by_path["zero.png"]["error"] == "empty file (0 bytes)" and by_path["zero.png"]["label"] == ""
    assert "truncated or corrupt" in by_path["truncated.png"]["error"]
    assert "not an image" in by_path["not-an-image.jpg"]["error"]
    assert "near-constant pixels" in by_path["blank.png"]["reason"] and by_path["blank.png"]["refer"] == "true"
    assert "image too small" in by_path["strip.png"]["reason"] and "aspect ratio" in by_path["strip.png"]["reason"]
    for r in rows:
        if not r["error"]:
            probs = [float(r[f"p_{k}"]) for k in ("normal", "lung_opacity", "viral_pneumonia", "covid19")]
            assert r["label"] in ("normal", "lung_opacity", "viral_pneumonia", "covid19")
            assert sum(probs) == pytest.approx(1.0, abs=0.02)  # uint8 outputs: steps of 1/256
    text = report.read_text()
    assert text.startswith("# Pre-diagnosis aid, not a diagnosis: a clinician must review every result.")
    assert "synthetic data" in text
    assert "9 images" in result.output and "errors 3" in result.output
    # what the listing passed over is counted by kind: notes.txt; ._patient-0.png, .hidden.png and the four
    # system folders (each once); the link to a folder outside the stick
    assert ("skipped 8 files not classified (hidden or system file 6, link to a folder (not followed) 1, "
            "not an image 1)") in result.output


def test_formats_and_summary(usb_stick, edge_bundle, tmp_path):
    runner = CliRunner()
    args = ["classify", str(usb_stick), "--model", str(edge_bundle)]
    table = runner.invoke(main, [*args, "--format", "table"])
    assert "patient-1.png" in table.output and "not a diagnosis" in table.output and "images/s" in table.output
    data = json.loads(runner.invoke(main, [*args, "--format", "json"]).stdout)
    assert data["notice"].startswith("Pre-diagnosis aid") and data["warnings"]
    assert data["summary"]["errors"] == 3 and data["summary"]["images"] == 9
    assert sum(data["summary"]["counts"].values()) == 6
    assert [r["path"] for r in data["results"]] == EXPECTED_ROWS
    runner.invoke(main, [*args, "--output", str(tmp_path / "r.jsonl")])
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["notice"].startswith("Pre-diagnosis aid") and len(lines) == 10
    default = runner.invoke(main, args)  # not a terminal: csv
    assert default.stdout.startswith("# Pre-diagnosis aid") and "path,label,p_normal" in default.stdout


def test_all_good_exits_0_and_no_recursive(usb_stick, edge_bundle, tmp_path):
    clean = tmp_path / "clean"
    (clean / "sub").mkdir(parents=True)
    shutil.copy(usb_stick / "patient-0.png", clean / "a.png")
    shutil.copy(usb_stick / "patient-1.png", clean / "sub" / "b.png")
    runner = CliRunner()
    result = runner.invoke(main, ["classify", str(clean), "--model", str(edge_bundle), "--format", "json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)["results"]) == 2
    result = runner.invoke(main, ["classify", str(clean), "--model", str(edge_bundle), "--format", "json", "--no-recursive"])
    assert [r["path"] for r in json.loads(result.stdout)["results"]] == ["a.png"]


def test_confidence_floor(usb_stick, edge_bundle):
    def referred(floor):
        out = CliRunner().invoke(main, ["classify", str(usb_stick / "ward-2"), "--model", str(edge_bundle),
                                        "--format", "json", "--min-confidence", floor]).stdout
        return json.loads(out)["results"][0]
    assert referred("1.0")["refer"] is True and "low confidence" in referred("1.0")["reason"]
    assert "low confidence" not in referred("0.0")["reason"]


def test_output_inside_the_input_folder_is_refused(usb_stick, edge_bundle):
    before = _snapshot(usb_stick)
    result = CliRunner().invoke(main, ["classify", str(usb_stick), "--model", str(edge_bundle),
                                       "--output", str(usb_stick / "report.csv")])
    assert result.exit_code == 2 and "never written to" in result.output
    assert _snapshot(usb_stick) == before


def test_bad_output_suffix(usb_stick, edge_bundle, tmp_path):
    result = CliRunner().invoke(main, ["classify", str(usb_stick), "--model", str(edge_bundle),
                                       "--output", str(tmp_path / "r.xlsx")])
    assert result.exit_code == 2 and "use .csv, .json, .jsonl or .html" in result.output


def test_no_model_says_how_to_get_one(usb_stick, monkeypatch):
    monkeypatch.delenv("CXR_EDGE_MODEL", raising=False)
    result = CliRunner().invoke(main, ["classify", str(usb_stick)])
    assert result.exit_code == 2 and "CXR_EDGE_MODEL" in result.output and "cxr-convert" in result.output


def test_model_from_the_environment(usb_stick, edge_bundle, monkeypatch):
    monkeypatch.setenv("CXR_EDGE_MODEL", str(edge_bundle))
    result = CliRunner().invoke(main, ["classify", str(usb_stick / "ward-2"), "--format", "csv"])
    assert result.exit_code == 0 and "patient-2.png" in result.output


def test_bundle_errors(edge_bundle, usb_stick, tmp_path):
    runner = CliRunner()
    newer = tmp_path / "newer"
    shutil.copytree(edge_bundle, newer)
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["format_version"] = 99
    (newer / "manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(main, ["classify", str(usb_stick), "--model", str(newer)])
    assert result.exit_code == 2 and "format version 99" in result.output and "upgrade cxr-edge" in result.output
    result = runner.invoke(main, ["classify", str(usb_stick), "--model", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "not found" in result.output


def test_undeployable_bundle_needs_allow_unverified(edge_bundle, usb_stick, tmp_path):
    from cxr_edge.atomic import write_atomic

    unverified = tmp_path / "unverified"
    shutil.copytree(edge_bundle, unverified)
    manifest = json.loads((unverified / "manifest.json").read_text())
    manifest["deployable"] = False
    write_atomic(unverified / "manifest.json", json.dumps(manifest))
    runner = CliRunner()
    refused = runner.invoke(main, ["classify", str(usb_stick), "--model", str(unverified)])
    assert refused.exit_code == 2 and "not deployable" in refused.output and "--allow-unverified" in refused.output
    allowed = runner.invoke(main, ["classify", str(usb_stick / "ward-2"), "--model", str(unverified), "--allow-unverified"])
    assert allowed.exit_code == 0 and "unverified" in allowed.stdout
    rows = _csv_rows(allowed.stdout)
    assert rows and all(r["refer"] == "true" and "unverified model" in r["reason"] for r in rows)
    info = runner.invoke(main, ["info", str(unverified)])
    assert ("deployable: NO (parity gate PASS; see parity.md): classify, evaluate and calibrate refuse this bundle "
            "unless given --allow-unverified") in info.output


def test_info(edge_bundle, tmp_path):
    result = CliRunner().invoke(main, ["info", str(edge_bundle)])
    assert result.exit_code == 0, result.output
    for text in ("labels: normal, lung_opacity, viral_pneumonia, covid19", "quantization: int8", "threshold",
                 "SYNTHETIC", "deployable: yes (parity gate PASS on ", "stage1.tflite: checksum ok", "not a diagnosis"):
        assert text in result.output
    counts = json.loads((edge_bundle / "manifest.json").read_text())["training_data"]["counts"]
    assert re.search(r"^  images +train +val +test$", result.output, re.M)
    assert re.search(rf"^  covid19 +{counts['train']['covid19']} +{counts['val']['covid19']} +"
                     rf"{counts['test']['covid19']}$", result.output, re.M)
    broken = tmp_path / "broken"
    shutil.copytree(edge_bundle, broken)
    (broken / "stage2.tflite").write_bytes((broken / "stage2.tflite").read_bytes()[:-10])
    result = CliRunner().invoke(main, ["info", str(broken)])
    assert result.exit_code == 2 and "stage2.tflite" in result.output and "truncated or replaced" in result.output


def test_evaluate_matches_scikit_learn(edge_bundle, synth_small):
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    result = CliRunner().invoke(main, ["evaluate", str(synth_small), "--model", str(edge_bundle), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    matrix = np.array(data["confusion"])
    assert matrix.shape == (4, 4) and matrix.sum() == 24 and data["notice"].startswith("Pre-diagnosis")
    y_true = np.repeat(np.arange(4), matrix.sum(axis=1))
    y_pred = np.concatenate([np.repeat(np.arange(4), row) for row in matrix])
    assert data["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert data["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", labels=range(4), zero_division=0))
    table = CliRunner().invoke(main, ["evaluate", str(synth_small), "--model", str(edge_bundle)])
    assert "true \\ predicted" in table.output and "macro-F1" in table.output


def test_numpy_metrics_match_scikit_learn_on_random_labels():
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 300), rng.integers(0, 3, 300)  # class 3 never predicted: zero division
    ours = table_metrics(confusion(y_true, y_pred, 4))
    np.testing.assert_array_equal(ours["confusion"], confusion_matrix(y_true, y_pred, labels=range(4)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=range(4), zero_division=0)
    for i, c in enumerate(ours["per_class"].values()):
        assert (c["precision"], c["recall"], c["f1"], c["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))


def test_bench_json(edge_bundle):
    result = CliRunner().invoke(main, ["bench", "--model", str(edge_bundle), "-n", "5", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["images"] == 5 and data["stage1"]["p50_ms"] > 0 and data["end_to_end"]["images_per_s"] > 0
    assert data["peak_memory_mb"] > 0 and 0 < data["time_split"]["inference"] < 1


def test_sanity_checks():
    rng = np.random.default_rng(0)
    assert sanity_problems(rng.integers(0, 255, (300, 300), dtype=np.uint8)) == []
    assert "near-constant" in sanity_problems(np.full((300, 300), 7, np.uint8))[0].words()
    assert "too small" in sanity_problems(rng.integers(0, 255, (60, 60), dtype=np.uint8))[0].words()
    assert "aspect ratio" in sanity_problems(rng.integers(0, 255, (300, 900), dtype=np.uint8))[0].words()


def test_classify_never_imports_tensorflow(edge_bundle, usb_stick):
    code = ("import sys\nfrom cxr_edge.cli import main\n"
            "try:\n    main(['classify', sys.argv[1], '--model', sys.argv[2], '--format', 'json'])\n"
            "except SystemExit as exc:\n    code = exc.code\n"
            "loaded = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]\n"
            "print('LOADED', loaded, 'EXIT', code, file=sys.stderr)\n")
    env = {k: v for k, v in os.environ.items() if k != "CXR_EDGE_MODEL"}
    proc = subprocess.run([sys.executable, "-c", code, str(usb_stick), str(edge_bundle)], capture_output=True,
                          text=True, env=env)
    assert "LOADED [] EXIT 1" in proc.stderr, proc.stderr
    assert json.loads(proc.stdout)["summary"]["images"] == 9


def test_progress_reports_every_image(usb_stick, edge_bundle):
    from cxr_edge.bundle.load import load_bundle
    from cxr_edge.run.classify import Classifier, run_folder

    calls = []
    results, summary = run_folder(Classifier(load_bundle(edge_bundle)), usb_stick,
                                  progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 9) for i in range(1, 10)] and summary.images == len(results) == 9


def test_a_folder_with_no_image_warns_and_exits_3(edge_bundle, tmp_path):
    """An unmounted stick looks like an empty one: neither is a quiet success."""
    stick = tmp_path / "stick"
    (stick / "System Volume Information").mkdir(parents=True)
    (stick / "notes.txt").write_text("not an image")
    result = CliRunner().invoke(main, ["classify", str(stick), "--model", str(edge_bundle), "--format", "csv"])
    assert result.exit_code == 3, result.output
    assert (f"WARNING: no image found in {stick}: if it is a USB stick, check that it is mounted and holds the "
            "radiographs; nothing was classified") in result.output


def test_a_stick_whose_every_file_failed_says_so(edge_bundle, tmp_path):
    stick = tmp_path / "stick"
    stick.mkdir()
    (stick / "a.png").write_bytes(b"not a png at all")
    (stick / "b.jpg").write_bytes(b"")
    result = CliRunner().invoke(main, ["classify", str(stick), "--model", str(edge_bundle), "--format", "csv"])
    assert result.exit_code == 1, result.output
    assert (f"WARNING: none of the 2 image(s) in {stick} could be read: nothing was classified (the errors are "
            "listed above)") in result.output


def test_an_output_in_a_missing_folder_is_named_before_anything_runs(usb_stick, edge_bundle, tmp_path):
    report = tmp_path / "nonexistent" / "r.csv"
    result = CliRunner().invoke(main, ["classify", str(usb_stick), "--model", str(edge_bundle), "--output", str(report)])
    assert result.exit_code == 2, result.output
    assert (f"--output {report}: the folder {report.parent} does not exist; create it first, or write the report "
            "elsewhere") in result.output
    assert ".journal" not in result.output


def test_evaluate_skips_system_folders_as_classify_does(edge_bundle, synth_small, tmp_path):
    labelled = tmp_path / "labelled"
    shutil.copytree(synth_small, labelled)
    (labelled / "System Volume Information").mkdir()
    shutil.copy(synth_small / "Normal/images/Normal-1.png", labelled / "System Volume Information" / "x.png")
    result = CliRunner().invoke(main, ["evaluate", str(labelled), "--model", str(edge_bundle), "--format", "json"])
    assert result.exit_code == 0, result.output


def test_info_on_a_missing_bundle_names_it_without_a_wrong_option(tmp_path):
    missing = tmp_path / "nope"
    result = CliRunner().invoke(main, ["info", str(missing)])
    assert result.exit_code == 2
    assert f"bundle {str(missing)!r} not found: give the path of a bundle folder or .cxrb file made by cxr-convert" \
        in result.output and "--model" not in result.output
