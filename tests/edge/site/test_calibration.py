"""Site calibration (`cxr-edge calibrate`), the site file in use (`classify --site`), run monitoring, and the
statistics behind them (checked against scipy and scikit-learn, which the box never imports)."""

import hashlib
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cxr_edge.cli import main
from cxr_edge.site.calibrate import labelled_images
from cxr_edge.site.stats import auc_delong, binomial_p_value, images_for_margin, wilson

from scripts.handmade import hand_set_model, handmade_run_dir

K, CENTRE = 10.0, 0.5  # the hand-set stage 1: p(abnormal) = sigmoid(K * (mean brightness - CENTRE))
NORMAL_B = np.linspace(0.2, 0.6, 100)  # each labelled image's mean brightness, so its score is known in advance
ABNORMAL_B = np.linspace(0.4, 0.8, 40)


def _score(brightness):
    return 1 / (1 + np.exp(-K * (np.asarray(brightness) - CENTRE)))


def test_statistics_match_scipy_and_scikit_learn():
    from scipy.stats import binomtest
    from sklearn.metrics import roc_auc_score

    for k, n in [(0, 10), (3, 10), (10, 10), (57, 60), (500, 1000)]:
        ci = binomtest(k, n).proportion_ci(method="wilson")
        assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
    for k, n, p in [(3, 10, 0.5), (40, 50, 0.3), (0, 30, 0.05), (900, 1000, 0.88), (12, 40, 0.3)]:
        assert binomial_p_value(k, n, p) == pytest.approx(binomtest(k, n, p).pvalue, rel=1e-9)
    rng = np.random.default_rng(0)
    positive, negative = rng.normal(1, 1, 50).round(1), rng.normal(0, 1, 70).round(1)  # with ties
    auc, lo, hi = auc_delong(positive, negative)
    assert auc == pytest.approx(roc_auc_score(np.r_[np.ones(50), np.zeros(70)], np.r_[positive, negative]))
    # DeLong's variance from its definition (the O(mn) structural components), against the midrank form
    psi = (positive[:, None] > negative[None, :]) + 0.5 * (positive[:, None] == negative[None, :])
    se = math.sqrt(psi.mean(axis=1).var(ddof=1) / 50 + psi.mean(axis=0).var(ddof=1) / 70)
    assert (lo, hi) == pytest.approx((auc - 1.959963984540054 * se, auc + 1.959963984540054 * se))
    assert images_for_margin(0.95, 0.05) == 82 and images_for_margin(0.5, 0.10) == 93


@pytest.fixture(scope="module")
def linear_bundle(tiny_run, tmp_path_factory):
    """An int8 bundle whose stage 1 is set by hand: p(abnormal) = sigmoid(10 (brightness - 0.5))."""
    import keras

    from cxr_convert.bundle import ConvertOptions, build_bundle
    from cxr_edge.site.gate import Limits

    run = tmp_path_factory.mktemp("runs") / "linear"
    handmade_run_dir(tiny_run, run)
    for name, n_out, weights, bias in (("stage1", 2, [[-K / 2, K / 2]], [K / 2 * CENTRE, -K / 2 * CENTRE]),
                                       ("stage2", 3, [[1.0, 0.0, -1.0]], [0.0, 0.2, 0.0])):
        hand_set_model(keras.layers.GlobalAveragePooling2D(), n_out, weights, bias, name).save(run / f"{name}.keras")
    out = tmp_path_factory.mktemp("bundles") / "linear"
    # int8 ranges calibrated over every brightness the tests use (the training images span less of it)
    checks = (np.indices((64, 64)) // 4).sum(axis=0) % 2
    calibration = np.stack([np.where(checks, level + 25, level - 25) for level in np.linspace(30, 225, 32)])
    build_bundle(run, out, ConvertOptions(limits=Limits(1.0, 1.0, 0.0, float_above_chance=False)),
                 calibration=calibration.astype(np.uint8)[..., None], log=lambda m: None)
    return out


def _image(path, brightness):
    """A 256-px image of mean brightness `brightness`: 4-px checks 25 gray levels either side (not flat)."""
    level = round(255 * brightness)
    checks = (np.indices((256, 256)) // 4).sum(axis=0) % 2
    Image.fromarray(np.where(checks, level + 25, level - 25).astype(np.uint8)).save(path)


def _labelled(folder, normal=NORMAL_B, abnormal=ABNORMAL_B):
    for label, values in (("normal", normal), ("abnormal", abnormal)):
        (folder / label).mkdir(parents=True)
        for i, b in enumerate(values):
            _image(folder / label / f"{i:03d}.png", b)
    return folder


def _files(bundle):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(bundle.iterdir())}


def test_calibrate_finds_the_threshold_known_in_advance(linear_bundle, tmp_path):
    labelled = _labelled(tmp_path / "labelled")
    before = _files(linear_bundle)
    site = tmp_path / "site.json"
    result = CliRunner().invoke(main, ["calibrate", str(labelled), "--model", str(linear_bundle), "--out", str(site),
                                       "--site", "Clinic 4", "--target-sensitivity", "0.95"])
    assert result.exit_code == 0, result.output
    assert _files(linear_bundle) == before  # the bundle is never changed
    record = json.loads(site.read_text())
    # sensitivity 0.95 of 40 abnormal images: the 38th highest score, the third-lowest abnormal brightness's
    expected = _score(ABNORMAL_B[2])
    assert record["threshold"] == pytest.approx(expected, abs=2 / 256)  # int8 output steps
    chosen = record["figures"]["chosen"]
    assert chosen["sensitivity"] == 38 / 40 and chosen["sensitivity_ci"] == pytest.approx(list(wilson(38, 40)))
    assert chosen["specificity"] == pytest.approx(np.mean(NORMAL_B < ABNORMAL_B[2]), abs=0.03)
    assert record["site"] == "Clinic 4" and record["min_confidence"] == 0.6
    assert record["bundle"]["manifest_sha256"] == hashlib.sha256((linear_bundle / "manifest.json").read_bytes()).hexdigest()
    auc = record["figures"]["auc"]
    assert auc[0] == pytest.approx(np.mean(ABNORMAL_B[:, None] > NORMAL_B[None, :])
                                   + 0.5 * np.mean(ABNORMAL_B[:, None] == NORMAL_B[None, :]), abs=0.02)
    assert "chosen threshold" in result.output and "±5 points needs about 82" in result.output
    info = CliRunner().invoke(main, ["info", str(linear_bundle), "--site", str(site)])
    assert info.exit_code == 0 and "'Clinic 4'" in info.output


def test_too_few_images_are_refused_and_nothing_is_written(linear_bundle, tmp_path):
    labelled = _labelled(tmp_path / "few", NORMAL_B[::10], ABNORMAL_B[::4])
    site = tmp_path / "site.json"
    result = CliRunner().invoke(main, ["calibrate", str(labelled), "--model", str(linear_bundle), "--out", str(site)])
    assert result.exit_code == 2 and "too few labelled images" in result.output and not site.exists()
    assert "the floor is 24 and 93" in result.output


def test_labels_from_a_csv_and_from_the_four_label_folders(tmp_path):
    (tmp_path / "a").mkdir()
    _image(tmp_path / "a" / "x.png", 0.5)
    _image(tmp_path / "a" / "y.png", 0.5)
    (tmp_path / "labels.csv").write_text("path,label\na/x.png,Normal\na/y.png,abnormal\n")
    folder, labels = labelled_images(tmp_path / "labels.csv")
    assert folder == tmp_path and labels == {"a/x.png": "normal", "a/y.png": "abnormal"}
    (tmp_path / "db" / "COVID" / "images").mkdir(parents=True)
    _image(tmp_path / "db" / "COVID" / "images" / "1.png", 0.5)
    assert labelled_images(tmp_path / "db")[1] == {"COVID/images/1.png": "covid19"}


def test_classify_with_the_site_file_and_its_monitoring(linear_bundle, tmp_path):
    site = tmp_path / "site.json"
    labelled = _labelled(tmp_path / "labelled")
    assert CliRunner().invoke(main, ["calibrate", str(labelled), "--model", str(linear_bundle), "--out",
                                     str(site)]).exit_code == 0
    record = json.loads(site.read_text())
    # a day like the calibration's: the same mix of images; and a day where every image looks abnormal
    usual, shifted = tmp_path / "usual", tmp_path / "shifted"
    usual.mkdir()
    for i, b in enumerate(np.r_[NORMAL_B, ABNORMAL_B]):
        _image(usual / f"{i:03d}.png", b)
    shifted.mkdir()
    for i in range(40):
        _image(shifted / f"{i:03d}.png", 0.75)
    args = ["--model", str(linear_bundle), "--format", "json"]
    day = CliRunner().invoke(main, ["classify", str(usual), *args, "--site", str(site)])
    assert day.exit_code == 0, day.output
    report = json.loads(day.stdout)
    assert report["bundle"]["operating_point"]["threshold"] == record["threshold"]
    assert "site file site.json" in report["bundle"]["operating_point"]["source"]
    assert not any("not calibrated" in w or "far outside" in w for w in report["warnings"])
    # the site's threshold decides, not the bundle's 0.5 (which would flag 55)
    flagged = sum(r["label"] != "normal" for r in report["results"])
    assert abs(flagged - sum(_score(b) >= record["threshold"] for b in np.r_[NORMAL_B, ABNORMAL_B])) <= 3
    assert flagged > 75
    odd_day = CliRunner().invoke(main, ["classify", str(shifted), *args, "--site", str(site)])
    warnings = json.loads(odd_day.stdout)["warnings"]
    assert any("flagged abnormal 40 of 40" in w and "far outside" in w for w in warnings), warnings
    assert "far outside" in odd_day.stderr
    # without the site file: the bundle's threshold, and a warning that says so in every form
    for fmt in ("json", "csv", "table"):
        plain = CliRunner().invoke(main, ["classify", str(usual), "--model", str(linear_bundle), "--format", fmt])
        assert "not calibrated for this site" in plain.stdout
    # a site file made for another bundle is refused
    record["bundle"]["manifest_sha256"] = "0" * 64
    other = tmp_path / "other-site.json"
    other.write_text(json.dumps(record))
    refused = CliRunner().invoke(main, ["classify", str(usual), *args, "--site", str(other)])
    assert refused.exit_code == 2 and "made for another bundle" in refused.output


def test_parity_reports_calibration_error_and_a_reliability_diagram(linear_bundle):
    parity = json.loads((linear_bundle / "parity.json").read_text())
    for model in ("float", "quantized"):
        for stage in ("stage1", "cascade"):
            figures = parity["calibration"][model][stage]
            assert 0 <= figures["ece"] <= 1 and sum(b["images"] for b in figures["bins"]) == parity["n_images"]
    assert "## Calibration of probabilities" in (linear_bundle / "parity.md").read_text()
    assert Image.open(linear_bundle / "reliability.png").size[0] >= 600
    manifest = json.loads((linear_bundle / "manifest.json").read_text())
    assert 0 <= manifest["expected"]["flagged_abnormal"] <= 1
