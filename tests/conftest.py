from pathlib import Path

import pytest

from cxr_train.synth import write_dataset

TESTS = Path(__file__).resolve().parent
TINY_BUNDLE = TESTS / "edge" / "tiny-bundle"
# What `cxr-convert --search` makes of the outlier run (python -m scripts.make_outlier_run OUT --test-bundle DIR)
MIXED_BUNDLE = TESTS / "edge" / "mixed-bundle"
# Fixtures that train or convert a model with TensorFlow: a test that uses one is marked `trains`.
TRAINING_FIXTURES = {"tiny_run", "handmade_run"}


def pytest_collection_modifyitems(items):
    """Mark the box's tests (`box`: tests/edge, run by make test-box without TensorFlow) and the tests that
    train (`trains`), so that make test runs each once: the box's where the box's packages are, the rest here."""
    for item in items:
        if (TESTS / "edge") in Path(item.path).parents:
            item.add_marker(pytest.mark.box)
        if TRAINING_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.trains)


@pytest.fixture(autouse=True)
def no_trusted_keys(tmp_path_factory, monkeypatch):
    """Every test starts with an empty trust folder, whatever /etc/cxr-edge/trusted-keys holds on this machine;
    tests/edge/bundle/test_signing.py installs keys where it needs them."""
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
    """A finished `cxr-train fit` run of the tiny preset (8 + 8 epochs, trunk frozen for the first): the training
    and conversion tests' model. Skipped where TensorFlow is not installed (`make test-box`)."""
    pytest.importorskip("tensorflow", reason="trains a model: TensorFlow is not installed here (make test runs it)")
    from click.testing import CliRunner

    from cxr_train.cli import main
    from scripts.make_test_bundle import TRAIN_ARGS

    run = tmp_path_factory.mktemp("runs") / "tiny"
    result = CliRunner().invoke(main, ["fit", str(synth_medium), "--out", str(run), *TRAIN_ARGS])
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture(scope="session")
def edge_bundle(tmp_path_factory):
    """The box's tests' int8 bundle: the committed tests/edge/tiny-bundle (a tiny run converted with the gate's
    limits wide open; scripts/make_test_bundle.py makes it again), copied so that no test can change the
    repository's copy. No training run and no TensorFlow needed."""
    import shutil

    return Path(shutil.copytree(TINY_BUNDLE, tmp_path_factory.mktemp("bundles") / "edge"))


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
    """A run folder whose two models are set by hand, not trained, on a data set that writes each class into
    the features they read (tests/handmade.py): confident, accurate and deterministic, so that the parity
    gate's verdict on them never depends on how a training run happened to go. 180 images per class give
    216 parity images (validation and test), more than the 189 at which agreement of every image clears the
    default 0.98 with its whole 95% interval."""
    from scripts.handmade import coded_models, handmade_run_dir, write_coded_dataset

    root = tmp_path_factory.mktemp("runs")
    run = root / "handmade"
    handmade_run_dir(tiny_run, run, write_coded_dataset(root / "coded", per_class=180, seed=5))
    for model in coded_models():
        model.save(run / f"{model.name}.keras")
    return run
