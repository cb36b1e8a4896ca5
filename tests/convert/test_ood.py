"""Out-of-distribution statistics as cxr-convert makes them: the score, the bundle file, the unlike images, and
the referral targets measured through the box on a model trained for it."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cxr_convert import ood
from cxr_edge.cli import main
from cxr_edge.models.ood import OODStats


def test_mahalanobis_score_separates_shifted_data():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (4, 20))
    labels = rng.integers(0, 4, 2000)
    train = centres[labels] + rng.normal(0, 1, (2000, 20))
    val = centres[rng.integers(0, 4, 500)] + rng.normal(0, 1, (500, 20))
    stats = ood.fit(train, labels, components=8)
    limit = ood.threshold(stats, val)
    scorer = OODStats(stats, limit)
    fresh = centres[rng.integers(0, 4, 1000)] + rng.normal(0, 1, (1000, 20))
    far = rng.normal(0, 1, (1000, 20)) + 12
    assert (scorer.score(fresh) > limit).mean() < 0.03  # about the 1% the 99th percentile promises
    assert (scorer.score(far) > limit).mean() == 1.0


def test_statistics_survive_the_bundle_file_round_trip():
    from cxr_edge.models.ood import to_bytes

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 10))
    stats = ood.fit(x, rng.integers(0, 4, 300), components=5)
    back = OODStats.from_bytes(to_bytes(stats), 3.0)
    np.testing.assert_allclose(back.score(x[:20]), OODStats(stats, 3.0).score(x[:20]), rtol=1e-4)


def test_unlike_images_of_every_kind():
    radiographs = np.random.default_rng(2).integers(0, 256, (5, 64, 64, 1), dtype=np.uint8)
    kinds = ood.unlike_images(radiographs, 3, 64)
    assert set(kinds) == {"noise", "photograph", "document", "other body part", "inverted radiograph",
                          "rotated radiograph"}
    for images in kinds.values():
        assert images.shape == (3, 64, 64, 1) and images.dtype == np.uint8


@pytest.fixture(scope="module")
def ood_bundle(tmp_path_factory):
    """A tiny model trained on 160 synthetic images per class and converted to int8: enough validation images
    (96) for the 99.5th-percentile threshold to mean something. With 100 per class (60 validation images) the
    share of new radiographs referred moved between 2.1% and 5.4% from one training run to the next (TensorFlow's
    CPU training is not bit-reproducible), across the 5% limit; with 160 it measured 0.0% in two runs."""
    from cxr_convert.cli import main as convert
    from cxr_train.cli import main as train
    from cxr_train.synth import write_dataset

    root = tmp_path_factory.mktemp("ood")
    data = write_dataset(root / "data", per_class=160, size=64, seed=21)
    result = CliRunner().invoke(train, ["fit", str(data), "--out", str(root / "run"), "--preset", "tiny",
                                        "--epochs-stage1", "15", "--epochs-stage2", "15", "--seed", "21"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(convert, [str(root / "run"), "--out", str(root / "bundle"),
                                          "--calibration-samples", "100"])
    assert result.exit_code in (0, 1), result.output  # the parity gate is not what this module tests
    return root / "bundle"


def _ood_share(bundle, folder) -> float:
    result = CliRunner().invoke(main, ["classify", str(folder), "--model", str(bundle), "--format", "json",
                                       "--allow-unverified"])
    rows = json.loads(result.stdout)["results"]
    assert rows and not any(r["error"] for r in rows)
    return sum("out-of-distribution" in r["reason"] for r in rows) / len(rows)


@pytest.mark.slow
def test_referral_targets_on_the_box_at_the_stored_threshold(ood_bundle, tmp_path):
    """Issue 8's targets, measured through `cxr-edge classify` on image files the model has never seen:
    at most 5% of new synthetic radiographs referred as out-of-distribution, at least 95% of each kind of
    unlike image."""
    from PIL import Image

    from cxr_edge.inputs.images import to_model_input
    from cxr_edge.labels import LABELS
    from cxr_train.synth import image_rng, make_image

    radiographs = tmp_path / "radiographs"
    radiographs.mkdir()
    fresh = []
    for label in LABELS:
        for i in range(1000, 1060):  # indices the training set never drew
            pixels = make_image(label, 64, image_rng(21, label, i)).pixels
            Image.fromarray(pixels).save(radiographs / f"{label}-{i}.png")
            fresh.append(to_model_input(pixels, 64))
    shares = {"radiographs": _ood_share(ood_bundle, radiographs)}
    for kind, images in ood.unlike_images(np.stack(fresh), 40, 64, seed=5).items():
        folder = tmp_path / kind.replace(" ", "-")
        folder.mkdir()
        for i, image in enumerate(images):
            Image.fromarray(image[..., 0]).save(folder / f"{i}.png")
        shares[kind] = _ood_share(ood_bundle, folder)
    print("referred as out-of-distribution:", {k: round(v, 3) for k, v in shares.items()})
    assert shares.pop("radiographs") <= 0.05, shares
    assert all(share >= 0.95 for share in shares.values()), shares


@pytest.mark.slow
def test_converter_reports_the_targets_it_measured(ood_bundle):
    figures = json.loads((ood_bundle / "manifest.json").read_text())["ood"]["figures"]
    print("cxr-convert's figures:", figures)
    assert figures["test_radiographs_wrongly_referred"] <= 0.05
    assert all(share >= 0.95 for share in figures["unlike_images_referred"].values())
    assert "Out-of-distribution referral" in (ood_bundle / "parity.md").read_text()
