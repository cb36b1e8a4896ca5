"""Conversion to a bundle, the parity gate, and the edge runtime loading what was converted."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cxr_convert import bundle as bundle_module
from cxr_convert.bundle import ConvertOptions, build_bundle
from cxr_convert.cli import main
from cxr_convert.tflite import QUANTIZATIONS, convert
from cxr_edge.bundle.load import BundleError, load_bundle, sha256_bytes
from cxr_edge.models.interpreter import TFLiteModel

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def int8_bundle(handmade_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "int8"
    result = CliRunner().invoke(main, [str(handmade_run), "--out", str(out), "--calibration-samples", "64"])
    return out, result


def test_int8_bundle_checksums_and_uint8_input(int8_bundle):
    out, result = int8_bundle
    assert result.exit_code in (0, 1), result.output
    manifest = json.loads((out / "manifest.json").read_text())
    for name in ("stage1.tflite", "stage2.tflite"):
        data = (out / name).read_bytes()
        assert manifest["files"][name] == {"size": len(data), "sha256": sha256_bytes(data)}
        model = TFLiteModel(data)
        assert model.input.dtype == np.uint8 and model.input.shape[1:] == (64, 64, 1)
    assert manifest["quantization"] == "int8" and manifest["input"]["dtype"] == "uint8"
    assert manifest["labels"] == ["normal", "lung_opacity", "viral_pneumonia", "covid19"]
    assert manifest["training_data"]["synthetic"] is True
    assert set(manifest["metrics"]) == {"float", "quantized"}
    assert {"parity.json", "parity.md"} <= {p.name for p in out.iterdir()}
    assert "TFLite float32" in (out / "parity.md").read_text()


def test_healthy_model_passes_the_gate(int8_bundle):
    out, result = int8_bundle
    parity = json.loads((out / "parity.json").read_text())
    # Scales: float32 TFLite differs from Keras by float32 rounding (about 1e-7 through these few layers), and
    # the int8 outputs move in steps of 1/256 (0.05 is 12 steps); no coded image lies near a boundary.
    assert parity["models"]["tflite_float32"]["cascade"]["agreement"] == 1.0  # conversion itself is exact
    assert parity["models"]["tflite_float32"]["cascade"]["max_abs_prob_diff"] < 1e-4
    assert parity["models"]["quantized"]["cascade"]["max_abs_prob_diff"] < 0.05  # int8 stays close to float
    assert result.exit_code == 0, result.output
    gate = parity["gate"]
    assert gate["verdict"] == "PASS" and gate["float_model"]["learned"]
    assert {c["verdict"] for c in gate["checks"]} == {"PASS"}
    assert parity["images"]["split"] == "val+test" and sum(parity["images"]["counts"].values()) == parity["n_images"] >= 189
    assert gate["bootstrap"]["samples"] == 2000
    assert json.loads((out / "manifest.json").read_text())["deployable"] is True
    assert load_bundle(out).deployable
    # The verdict closes the output, after the table and the sections below it.
    assert result.output.rstrip().splitlines()[-2].startswith("PASS: deployable")
    assert result.output.index("| accuracy drop |") < result.output.index("PASS: deployable (every check")


def test_too_few_parity_images_are_inconclusive_and_say_how_many_would_do(handmade_run, tmp_path):
    """The test split alone (108 images) cannot show agreement >= 0.98, even when every label agrees."""
    out = tmp_path / "few"
    result = CliRunner().invoke(main, [str(handmade_run), "--out", str(out), "--parity-split", "test",
                                       "--calibration-samples", "64"])
    assert result.exit_code == 1, result.output
    parity = json.loads((out / "parity.json").read_text())
    assert parity["images"]["counts"] == {"test": parity["n_images"]} and parity["n_images"] < 189
    assert parity["gate"]["verdict"] == "INCONCLUSIVE" and parity["gate"]["images_to_settle"] == 189
    assert "INCONCLUSIVE: NOT DEPLOYABLE" in result.output and "about 189 images would settle it" in result.output
    assert json.loads((out / "manifest.json").read_text())["deployable"] is False


def test_parity_data_adds_its_images_and_leaves_out_copies_of_training_images(handmade_run, tmp_path):
    import shutil

    from cxr_train.dataset import read_split, select

    from scripts.handmade import write_coded_dataset

    extra = write_coded_dataset(tmp_path / "extra", per_class=10, seed=11)
    config = json.loads((handmade_run / "config.json").read_text())
    trained = select(read_split(handmade_run / "split.csv"), "train")[0]
    shutil.copy(f"{config['data_dir']}/{trained.path}", extra / trained.label / "copy-of-a-training-image.png")
    out = tmp_path / "more"
    result = CliRunner().invoke(main, [str(handmade_run), "--out", str(out), "--parity-data", str(extra),
                                       "--calibration-samples", "64"])
    assert result.exit_code == 0, result.output
    assert "--parity-data: left out 1 exact copies of training images" in result.output
    parity = json.loads((out / "parity.json").read_text())
    counts = parity["images"]["counts"]
    assert counts["parity_data"] == 40 and set(counts) == {"val", "test", "parity_data"}
    assert parity["n_images"] == parity["gate"]["n_images"] == sum(counts.values())
    assert parity["images"]["parity_data"] == str(extra)


def test_blank_calibration_fails_the_gate_with_the_message(handmade_run, tmp_path, monkeypatch):
    blank = lambda records, data_dir, size, n, seed: np.zeros((8, size, size, 1), np.uint8)  # noqa: E731
    monkeypatch.setattr(bundle_module, "calibration_set", blank)
    out = tmp_path / "broken"
    result = CliRunner().invoke(main, [str(handmade_run), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "FAIL: NOT DEPLOYABLE" in result.output
    assert "cascade agreement with float: float 1.0000, int8 " in result.output and "below limit 0.9800" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["deployable"] is False and manifest["parity_gate"]["failures"]
    with pytest.raises(BundleError, match="not deployable"):
        load_bundle(out)
    assert load_bundle(out, allow_unverified=True).deployable is False


@pytest.mark.parametrize("quantization", QUANTIZATIONS)
def test_each_quantization_gives_a_model_the_edge_runtime_loads(tiny_run, quantization):
    import keras

    model = keras.models.load_model(tiny_run / "stage2.keras", compile=False)
    calibration = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 1), dtype=np.uint8)
    edge_model = TFLiteModel(convert(model, quantization, calibration))
    probs = edge_model.predict(calibration)[0]
    assert probs.shape == (4, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.02)
    float_probs = model.predict(calibration.astype(np.float32), verbose=0)
    assert np.abs(probs - float_probs).max() < 0.1


def test_flipped_byte_and_missing_file_are_refused(int8_bundle, tmp_path):
    import shutil

    out, _ = int8_bundle
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    data = bytearray((copy / "stage2.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "stage2.tflite").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"stage2.tflite: sha256 [0-9a-f]{64} does not match the manifest's"):
        load_bundle(copy)
    (copy / "stage1.tflite").unlink()
    with pytest.raises(BundleError, match="stage1.tflite: missing"):
        load_bundle(copy)


def test_missing_run_files_are_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, [str(tmp_path), "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "not a finished training run" in result.output


def test_options_defaults_match_the_spec():
    options = ConvertOptions()
    assert (options.quantization, options.calibration_samples) == ("int8", 300)
    assert (options.limits.max_accuracy_drop, options.limits.max_f1_drop, options.limits.min_agreement) == (0.01, 0.02, 0.98)
    assert (options.parity_split, options.parity_data, options.bootstrap_samples) == ("val+test", None, 2000)


def test_debug_quantization_reports_per_layer_error(tiny_run):
    import keras

    from cxr_convert.tflite import debug_quantization

    model = keras.models.load_model(tiny_run / "stage1.keras", compile=False)
    calibration = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 1), dtype=np.uint8)
    rows = debug_quantization(model, calibration)
    assert rows and {"op_name", "mean_squared_error", "max_abs_error"} <= set(rows[0])
    errors = [r["mean_squared_error"] for r in rows]
    assert errors == sorted(errors, reverse=True)
