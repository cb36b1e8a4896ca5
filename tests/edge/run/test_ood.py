"""Out-of-distribution referral on the box: bundles with and without the statistics."""

import json
import shutil

import pytest
from click.testing import CliRunner

from cxr_edge.atomic import write_atomic
from cxr_edge.bundle.files import FORMAT_VERSION
from cxr_edge.bundle.load import load_bundle
from cxr_edge.cli import main

from tests.bundle_edits import older_format


@pytest.mark.slow
def test_bundle_carries_statistics_and_the_box_uses_them(edge_bundle, usb_stick, tmp_path):
    manifest = json.loads((edge_bundle / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION and manifest["ood"]["file"] == "ood.npz"
    assert "ood.npz" in manifest["files"] and load_bundle(edge_bundle).ood_stats() is not None
    figures = manifest["ood"]["figures"]
    assert 0 <= figures["test_radiographs_wrongly_referred"] <= 1 and len(figures["unlike_images_referred"]) == 6
    assert "Out-of-distribution referral" in (edge_bundle / "parity.md").read_text()
    rows = json.loads(CliRunner().invoke(main, ["classify", str(usb_stick), "--model", str(edge_bundle),
                                                "--format", "json"]).stdout)["results"]
    assert all(isinstance(r["ood_score"], float) for r in rows if not r["error"])
    # a zero threshold: every image is unlike the training data, and is referred as such
    strict = tmp_path / "strict"
    shutil.copytree(edge_bundle, strict)
    manifest["ood"]["threshold"] = 0.0
    write_atomic(strict / "manifest.json", json.dumps(manifest))
    rows = json.loads(CliRunner().invoke(main, ["classify", str(usb_stick), "--model", str(strict),
                                                "--format", "json"]).stdout)["results"]
    assert all(r["refer"] and "out-of-distribution" in r["reason"] for r in rows if not r["error"])


@pytest.mark.slow
def test_format_1_bundles_still_load_without_ood(edge_bundle, usb_stick, tmp_path):
    old = older_format(edge_bundle, tmp_path / "old", 1)
    assert load_bundle(old).ood_stats() is None
    info = CliRunner().invoke(main, ["info", str(old)])
    assert info.exit_code == 0 and "out-of-distribution referral: none (format 1 bundle" in info.output
    result = CliRunner().invoke(main, ["classify", str(usb_stick), "--model", str(old), "--format", "json"])
    rows = json.loads(result.stdout)["results"]
    assert rows and all(r["ood_score"] is None for r in rows)
