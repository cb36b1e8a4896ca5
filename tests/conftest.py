import pytest

from cxr_train.synth import write_dataset


@pytest.fixture(autouse=True)
def no_trusted_keys(tmp_path_factory, monkeypatch):
    """Every test starts with an empty trust folder, whatever /etc/cxr-edge/trusted-keys holds on this machine;
    tests/test_signing.py installs keys where it needs them."""
    monkeypatch.setenv("CXR_EDGE_TRUSTED_KEYS", str(tmp_path_factory.getbasetemp() / "no-trusted-keys"))


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory):
    """A small synthetic data set in the Database layout: 6 images per class at 64 px."""
    return write_dataset(tmp_path_factory.mktemp("synth") / "data", per_class=6, size=64, seed=3)


@pytest.fixture(scope="session")
def synth_medium(tmp_path_factory):
    """Enough synthetic data (30 per class at 64 px) for a tiny model to tell classes apart a little."""
    return write_dataset(tmp_path_factory.mktemp("synth") / "medium", per_class=30, size=64, seed=4)


@pytest.fixture(scope="session")
def tiny_run(synth_medium, tmp_path_factory):
    """A finished `cxr-train fit` run of the tiny preset (8 + 8 epochs, trunk frozen for the first)."""
    from click.testing import CliRunner

    from cxr_train.cli import main

    run = tmp_path_factory.mktemp("runs") / "tiny"
    result = CliRunner().invoke(main, ["fit", str(synth_medium), "--out", str(run), "--preset", "tiny",
                                       "--epochs-stage1", "8", "--epochs-stage2", "8", "--batch-size", "16",
                                       "--freeze-epochs", "1"])
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture(scope="session")
def edge_bundle(tiny_run, tmp_path_factory):
    """An int8 bundle of the tiny run for the edge runtime's tests. The gate's limits are set wide open:
    these tests are about the box, not the gate (tests/test_convert.py checks the gate)."""
    from cxr_convert.bundle import ConvertOptions, build_bundle
    from cxr_convert.parity import Limits

    out = tmp_path_factory.mktemp("bundles") / "edge"
    options = ConvertOptions(calibration_samples=32, limits=Limits(1.0, 1.0, 0.0))
    manifest = build_bundle(tiny_run, out, options, log=lambda msg: None)
    assert manifest["deployable"]
    return out


@pytest.fixture()
def usb_stick(tmp_path, synth_small):
    """A USB stick as clinics hand it over: radiographs in folders, plus everything else sticks collect."""
    import shutil

    import numpy as np
    from PIL import Image

    stick = tmp_path / "usb"
    (stick / "ward-2").mkdir(parents=True)
    for i, name in enumerate(["Normal/images/Normal-1.png", "COVID/images/COVID-2.png",
                              "Viral Pneumonia/images/Viral Pneumonia-3.png"]):
        img = Image.open(synth_small / name).resize((160, 160))
        img.save(stick / ("ward-2" if i == 2 else ".") / f"patient-{i}.png")
    Image.open(synth_small / "Lung_Opacity/images/Lung_Opacity-1.png").resize((160, 160)).convert("RGB").save(
        stick / "patient-3.jpg", quality=95)
    good = (stick / "patient-0.png").read_bytes()
    (stick / "truncated.png").write_bytes(good[: len(good) // 3])
    (stick / "zero.png").write_bytes(b"")
    (stick / "not-an-image.jpg").write_text("this is a text file with an image suffix")
    (stick / "notes.txt").write_text("not an image suffix: skipped")
    (stick / "._patient-0.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (stick / ".hidden.png").write_bytes(good)
    for system in ("System Volume Information", ".Trashes", ".Spotlight-V100", "$RECYCLE.BIN"):
        (stick / system).mkdir()
        (stick / system / "x.png").write_bytes(good)
    Image.fromarray(np.full((200, 200), 90, np.uint8)).save(stick / "blank.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 400), dtype=np.uint8)).save(stick / "strip.png")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(stick / "patient-0.png", outside / "linked.png")
    (stick / "link-to-folder").symlink_to(outside, target_is_directory=True)
    return stick


@pytest.fixture(scope="session")
def handmade_run(tiny_run, tmp_path_factory):
    """A run folder whose two models are set by hand, not trained: confident, varied and deterministic, so
    that the parity gate's verdict on them never depends on how a training run happened to go.

    Stage 1 reads overall brightness, stage 2 the brightness of the four image quadrants, each with large
    weights centred on the test images' own statistics.
    """
    import keras
    import numpy as np

    from cxr_train.data import load_pixels
    from cxr_train.dataset import read_split, select

    from .handmade import hand_set_model as model, handmade_run_dir

    run = tmp_path_factory.mktemp("runs") / "handmade"
    config = handmade_run_dir(tiny_run, run)
    test = load_pixels(config["data_dir"], select(read_split(run / "split.csv"), "test"), 64).astype(np.float32) / 255

    # Decision boundaries sit in the widest gaps between the test images' own feature values, so no test
    # image lies within quantization error of one.
    brightness = test.mean(axis=(1, 2, 3))
    stage1 = model(keras.layers.GlobalAveragePooling2D(), 2, np.array([[-200.0, 200.0]]),
                   200 * np.array([1, -1]) * _widest_gap(brightness, 0.3, 0.7), "stage1")
    quadrants = test.reshape(len(test), 2, 32, 2, 32).mean(axis=(2, 4)).reshape(len(test), 4)
    contrast = quadrants[:, 0] - quadrants[:, 3]  # top-left minus bottom-right
    c1, c2 = _widest_gap(contrast, 0.15, 0.45), _widest_gap(contrast, 0.55, 0.85)
    w2 = np.zeros((4, 3))
    w2[0], w2[3] = [-200, 0, 200], [200, 0, -200]  # logits: -k(f - c1), 0, k(f - c2)
    stage2 = model(keras.layers.AveragePooling2D(32), 3, w2, np.array([200 * c1, 0, -200 * c2]), "stage2")
    stage1.save(run / "stage1.keras")
    stage2.save(run / "stage2.keras")
    return run


def _widest_gap(values, low, high):
    """The midpoint of the widest gap between sorted values within the [low, high] quantile range."""
    import numpy as np

    v = np.sort(values)
    lo, hi = int(low * (len(v) - 1)), int(high * (len(v) - 1))
    i = lo + int(np.argmax(np.diff(v[lo:hi + 1])))
    return float((v[i] + v[i + 1]) / 2)
