"""Occlusion heatmaps on the box: right size, never in the input folder, hot where the evidence is."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cxr_edge.cli import main
from cxr_edge.pictures.heatmap import heatmap_name, occlusion_map

pytestmark = pytest.mark.slow


def test_heatmaps_are_written_beside_nothing_of_the_input(usb_stick, edge_bundle, tmp_path):
    before = sorted(p.relative_to(usb_stick) for p in usb_stick.rglob("*"))
    out = tmp_path / "heat"
    result = CliRunner().invoke(main, ["classify", str(usb_stick), "--model", str(edge_bundle), "--format", "csv",
                                       "--heatmaps", str(out)])
    assert result.exit_code == 1, result.output  # the stick holds bad files; they get no heatmap
    assert sorted(p.relative_to(usb_stick) for p in usb_stick.rglob("*")) == before
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(heatmap_name(n) for n in ["blank.png", "patient-0.png", "patient-1.png",
                                                       "patient-3.jpg", "strip.png", "ward-2/patient-2.png"])
    heat = Image.open(out / heatmap_name("ward-2/patient-2.png"))
    assert heat.mode == "RGB" and heat.size == Image.open(usb_stick / "ward-2" / "patient-2.png").size
    strip = Image.open(out / heatmap_name("strip.png"))
    assert strip.size == (400, 120)  # the original's size, not the model's


def test_heatmaps_inside_the_input_folder_are_refused(usb_stick, edge_bundle):
    result = CliRunner().invoke(main, ["classify", str(usb_stick), "--model", str(edge_bundle),
                                       "--heatmaps", str(usb_stick / "heat")])
    assert result.exit_code == 2 and "never written to" in result.output
    assert not (usb_stick / "heat").exists()


class _BrightTopLeft:
    """A stand-in model whose class-0 probability is the brightness of the top-left quarter."""

    def predict(self, pixels):
        p = pixels[:, :16, :16, 0].mean(axis=(1, 2)) / 255.0
        return [np.stack([p, 1 - p], axis=1)]


def test_occlusion_finds_the_region_the_model_uses():
    pixels = np.zeros((32, 32, 1), np.uint8)
    pixels[:16, :16] = 255
    heat = occlusion_map(_BrightTopLeft(), pixels, 0, grid=4)
    assert heat[:2, :2].min() > 0 and heat[2:, :].max() == 0 and heat[:, 2:].max() == 0
