import pytest

from cxr_train.synth import write_dataset


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
