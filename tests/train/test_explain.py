"""Grad-CAM on the training side: `cxr-train explain` writes overlays where asked and never beside the images,
and a trained model's maps point at the synthetic findings far more often than chance."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cxr_edge.inputs.images import to_model_input
from cxr_train.cli import main
from cxr_train.explain import grad_cam, pointing_game
from cxr_train.synth import image_rng, make_image

pytestmark = pytest.mark.slow


def test_explain_writes_one_overlay_per_image_and_goes_on_past_bad_ones(tiny_run, synth_medium, tmp_path):
    covid, normal = synth_medium / "COVID" / "images", synth_medium / "Normal" / "images"
    bad = tmp_path / "stick" / "broken.png"
    bad.parent.mkdir()
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    before = {p: p.stat().st_mtime_ns for p in covid.iterdir()}
    out = tmp_path / "review"
    result = CliRunner().invoke(main, ["explain", str(tiny_run), str(covid / "COVID-1.png"), str(bad),
                                       str(normal / "Normal-1.png"), "--out", str(out)])
    assert result.exit_code == 1, result.output  # one image failed; the others were written
    assert "broken.png: error:" in result.output and "not a diagnosis" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["COVID-1.gradcam.png", "Normal-1.gradcam.png"]
    overlay = Image.open(out / "COVID-1.gradcam.png")
    assert overlay.mode == "RGB" and overlay.size == Image.open(covid / "COVID-1.png").size
    assert {p: p.stat().st_mtime_ns for p in covid.iterdir()} == before


def test_explain_takes_folders_without_masks_and_names_same_stems_apart(tiny_run, synth_medium, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "x.png").write_bytes((synth_medium / "COVID" / "images" / "COVID-2.png").read_bytes())
    (b / "masks").mkdir()  # the Database's lung masks are not radiographs: left out
    (b / "masks" / "y.png").write_bytes((synth_medium / "COVID" / "masks" / "COVID-2.png").read_bytes())
    result = CliRunner().invoke(main, ["explain", str(tiny_run), str(a), str(b), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x-2.gradcam.png", "x.gradcam.png"]


def test_explain_refuses_to_write_into_the_images_folder(tiny_run, synth_medium):
    images = synth_medium / "Normal" / "images"
    result = CliRunner().invoke(main, ["explain", str(tiny_run), str(images / "Normal-1.png"),
                                       "--out", str(images / "cams")])
    assert result.exit_code == 2 and "inside the folder of the images" in result.output
    assert not (images / "cams").exists()


def test_pointing_game_counts_hits_and_chance():
    cam = np.zeros((4, 4))
    cam[1, 2] = 1.0  # the hottest cell's centre is at (62.5, 37.5) in a 100 x 100 image
    hit, chance = pointing_game([cam, cam], [(50, 25, 74, 49), (0, 75, 24, 99)], 100, 100, tolerance=0.0)
    assert hit == 0.5 and chance == pytest.approx(0.0625)


def test_grad_cam_points_at_synthetic_findings_far_more_often_than_chance():
    """A tiny model trained on normal vs lung opacity (a blob at a random place in a lung): its map's hottest
    point lands in the generated finding's box far more often than a random point would."""
    import keras

    from cxr_train.alexnet import build_model

    def images(label, first, count):
        return [make_image(label, 128, image_rng(11, label, i)) for i in range(first, first + count)]

    def pixels(drawn):
        return np.stack([to_model_input(d.pixels, 64) for d in drawn])

    train = images("normal", 0, 200) + images("lung_opacity", 0, 200)
    keras.utils.set_random_seed(11)
    model = build_model("tiny", 2)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(pixels(train).astype("float32"), np.repeat([0, 1], 200), batch_size=32, epochs=30, verbose=0)
    held_out = images("lung_opacity", 1000, 60)
    cams = grad_cam(model, pixels(held_out), 1)
    hit, chance = pointing_game(cams, [d.finding_box for d in held_out], 128, 128)
    print(f"pointing game: hottest point in the finding's box {hit:.2f}, chance {chance:.2f}")
    assert hit >= 3 * chance, (hit, chance)
