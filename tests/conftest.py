import pytest

from cxr_train.synth import write_dataset


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory):
    """A small synthetic data set in the Database layout: 6 images per class at 64 px."""
    return write_dataset(tmp_path_factory.mktemp("synth") / "data", per_class=6, size=64, seed=3)
