import numpy as np
import pytest

from cxr_train.alexnet import PRESETS, build_model

# conv1..conv5 (one grayscale input channel, grouped conv2/4/5) and the two BatchNorms, counted by hand.
TRUNK = (11 * 11 * 1 * 96 + 96) + (5 * 5 * 48 * 256 + 256) + (3 * 3 * 256 * 384 + 384) \
    + (3 * 3 * 192 * 384 + 384) + (3 * 3 * 192 * 256 + 256) + 4 * (96 + 256)  # conv1..5 + two BatchNorms


def test_alexnet_is_the_faithful_size():
    model = build_model("alexnet", 2)
    assert model.input_shape == (None, 227, 227, 1) and model.output_shape == (None, 2)
    expected = TRUNK + (9216 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 2 + 2)
    assert model.count_params() == expected
    # ~57 M: the original's 61 M less the RGB conv1 and the 1,000-class fc8
    assert 56.5e6 <= expected <= 62e6


def test_alexnet_edge_has_the_same_trunk_and_a_small_head():
    model = build_model("alexnet-edge", 3)
    assert model.output_shape == (None, 3)
    assert model.count_params() == TRUNK + (256 * 256 + 256) + (256 * 3 + 3)
    full = build_model("alexnet", 3)
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5"):
        assert model.get_layer(name).kernel.shape == full.get_layer(name).kernel.shape


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("classes", [2, 3])
def test_every_preset_builds_and_predicts_probabilities(preset, classes):
    model = build_model(preset, classes)
    size = PRESETS[preset].image_size
    x = np.random.default_rng(0).integers(0, 256, (2, size, size, 1)).astype(np.float32)
    probs = model.predict(x, verbose=0)
    assert probs.shape == (2, classes) and not np.isnan(probs).any()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer("features") is not None and model.get_layer("logits") is not None


def test_every_weight_gets_a_gradient():
    import tensorflow as tf

    model = build_model("tiny", 3)
    x = tf.random.uniform((4, 64, 64, 1), 0, 255)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(x, training=True)[:, 0])
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None for g in grads)


@pytest.mark.parametrize("preset", ["tiny", "alexnet-edge"])
def test_save_load_round_trip(tmp_path, preset):
    import keras

    model = build_model(preset, 3)
    size = PRESETS[preset].image_size
    x = np.random.default_rng(1).integers(0, 256, (1, size, size, 1)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(model.predict(x, verbose=0), loaded.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="choose one of alexnet, alexnet-edge, tiny"):
        build_model("resnet", 2)
