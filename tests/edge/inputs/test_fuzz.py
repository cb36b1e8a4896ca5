"""Hundreds of malformed files through `classify`: it never crashes, every file gets exactly one row, and
the valid files beside them keep the labels of a clean run. Seeded, so every run tests the same files."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cxr_edge.cli import main

pytestmark = pytest.mark.slow


def _mutations(data: bytes, rng: np.random.Generator) -> bytes:
    """One random corruption of a real file: flipped bytes, a cut, a spliced block, or a shuffled chunk."""
    b = bytearray(data)
    kind = rng.integers(5)
    if kind == 0:
        for i in rng.integers(0, len(b), rng.integers(1, 20)):
            b[i] ^= int(rng.integers(1, 256))
    elif kind == 1:
        b = b[: rng.integers(1, len(b))]
    elif kind == 2:
        at = int(rng.integers(0, len(b)))
        b[at:at] = rng.integers(0, 256, int(rng.integers(1, 400)), dtype=np.uint8).tobytes()
    elif kind == 3:
        at = int(rng.integers(8, max(9, len(b) - 64)))
        b[at:at + 64] = bytes(64)
    else:  # a valid header followed by garbage
        b = b[:64] + rng.integers(0, 256, len(b), dtype=np.uint8).tobytes()
    return bytes(b)


@pytest.fixture(scope="module")
def fuzz_folder(synth_small, tmp_path_factory):
    pydicom = pytest.importorskip("pydicom")
    from tests.edge.inputs.test_dicom import write_dicom

    folder = tmp_path_factory.mktemp("fuzz")
    seeds = {}
    xray = Image.open(synth_small / "Normal/images/Normal-2.png").resize((160, 160))
    seeds["png"] = folder / "valid-a.png"
    xray.save(seeds["png"])
    seeds["jpg"] = folder / "valid-b.jpg"
    xray.convert("RGB").save(seeds["jpg"], quality=90)
    seeds["tif"] = folder / "valid-c.tif"
    xray.save(seeds["tif"])
    seeds["dcm"] = write_dicom(folder / "valid-d.dcm", np.asarray(xray).astype(np.float64) * 16, 12)
    Image.open(synth_small / "COVID/images/COVID-3.png").resize((160, 160)).save(folder / "valid-e.png")
    rng = np.random.default_rng(1234)
    for i in range(300):
        suffix = ("png", "jpg", "tif", "dcm")[i % 4]
        (folder / f"fuzz-{i:03d}.{suffix}").write_bytes(_mutations(seeds[suffix].read_bytes(), rng))
    for i in range(20):  # not derived from any image at all
        (folder / f"noise-{i:02d}.png").write_bytes(rng.integers(0, 256, int(rng.integers(0, 3000)), dtype=np.uint8).tobytes())
    return folder


def test_malformed_files_never_crash_classify(fuzz_folder, edge_bundle, tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    for p in sorted(fuzz_folder.glob("valid-*")):
        (clean / p.name).write_bytes(p.read_bytes())
    runner = CliRunner()
    expected = json.loads(runner.invoke(main, ["classify", str(clean), "--model", str(edge_bundle),
                                               "--format", "json"]).stdout)["results"]
    result = runner.invoke(main, ["classify", str(fuzz_folder), "--model", str(edge_bundle), "--format", "json"])
    assert result.exit_code in (0, 1), result.output  # never a crash (which would be another code or an exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    rows = json.loads(result.stdout)["results"]
    files = sorted(p.name for p in fuzz_folder.iterdir())
    assert sorted(r["path"] for r in rows) == files  # exactly one row per file
    by_path = {r["path"]: r for r in rows}
    for row in expected:
        assert by_path[row["path"]] == row  # valid files: same label, same probabilities
    for row in rows:
        assert bool(row["label"]) != bool(row["error"])  # a label or an error, never both, never neither
    assert sum(bool(r["error"]) for r in rows) > 100  # the corruptions were real
