import numpy as np
import pytest

from cxr_train.alexnet import build_model
from cxr_train.pretrained import InitWeightsError, copy_matching_layers, load_init_weights

BVLC_SHAPES = {
    "conv1": (11, 11, 3, 96), "conv2": (5, 5, 48, 256), "conv3": (3, 3, 256, 384),
    "conv4": (3, 3, 192, 384), "conv5": (3, 3, 192, 256),
    "fc6": (9216, 4096), "fc7": (4096, 4096), "fc8": (4096, 1000),
}


@pytest.fixture(scope="module")
def bvlc_file(tmp_path_factory):
    """A bvlc_alexnet.npy of the true shapes, as the widely used Caffe conversion lays it out."""
    rng = np.random.default_rng(0)
    data = {name: [rng.standard_normal(shape, dtype=np.float32) * 0.01,
                   rng.standard_normal(shape[-1], dtype=np.float32)] for name, shape in BVLC_SHAPES.items()}
    path = tmp_path_factory.mktemp("bvlc") / "bvlc_alexnet.npy"
    np.save(path, np.array(data, dtype=object), allow_pickle=True)
    return path, data


def test_bvlc_loads_into_the_faithful_model(bvlc_file):
    path, data = bvlc_file
    model = build_model("alexnet", 2)
    head_before = model.get_layer("logits").get_weights()[0].copy()
    loaded = load_init_weights(model, path)
    assert loaded == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    kernel = model.get_layer("conv1").get_weights()[0]
    np.testing.assert_allclose(kernel, data["conv1"][0].sum(axis=2, keepdims=True), rtol=1e-6)  # RGB -> gray
    for name in ("conv2", "conv4", "conv5"):  # grouped: (h, w, in/2, out) as in the original
        np.testing.assert_array_equal(model.get_layer(name).get_weights()[0], data[name][0])
    np.testing.assert_array_equal(model.get_layer("fc7").get_weights()[1], data["fc7"][1])
    np.testing.assert_array_equal(model.get_layer("logits").get_weights()[0], head_before)  # fc8 never loaded


def test_bvlc_loads_the_trunk_only_into_alexnet_edge(bvlc_file):
    path, data = bvlc_file
    model = build_model("alexnet-edge", 3)
    assert load_init_weights(model, path) == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    np.testing.assert_array_equal(model.get_layer("conv3").get_weights()[0], data["conv3"][0])


def test_shape_mismatch_names_the_layer_and_both_shapes(bvlc_file):
    path, _ = bvlc_file
    with pytest.raises(InitWeightsError) as info:
        load_init_weights(build_model("tiny", 2), path)
    message = str(info.value)
    assert "'conv1'" in message and "(5, 5, 1, 16)" in message and "(11, 11, 1, 96)" in message


def test_unreadable_and_missing_files(tmp_path):
    model = build_model("tiny", 2)
    with pytest.raises(InitWeightsError, match="not found"):
        load_init_weights(model, tmp_path / "nope.npy")
    bad = tmp_path / "bvlc_alexnet.npy"
    bad.write_bytes(b"garbage")
    with pytest.raises(InitWeightsError, match="cannot read"):
        load_init_weights(model, bad)
    other = tmp_path / "weights.txt"
    other.write_text("x")
    with pytest.raises(InitWeightsError, match="expected bvlc_alexnet.npy"):
        load_init_weights(model, other)


def test_own_keras_file_loads_by_layer_name_except_the_head(tmp_path):
    source = build_model("tiny", 2)
    source.save(tmp_path / "stage1.keras")
    target = build_model("tiny", 3)
    loaded = load_init_weights(target, tmp_path / "stage1.keras")
    assert "conv3" in loaded and "logits" not in loaded
    np.testing.assert_array_equal(target.get_layer("conv3").get_weights()[0], source.get_layer("conv3").get_weights()[0])
    assert copy_matching_layers(source, build_model("tiny", 3)) == loaded
