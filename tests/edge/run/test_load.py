"""A smaller version of benchmarks/load.py: memory flat and no descriptor leak from 50 to 500 images."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def _soak(bundle, folder):
    out = subprocess.run([sys.executable, "-m", "cxr_edge.run.soak", str(bundle), str(folder)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_memory_flat_and_no_descriptor_leak(edge_bundle, usb_stick, tmp_path):
    source = usb_stick / "patient-0.png"
    runs = {}
    for n in (50, 500):
        folder = tmp_path / f"n{n}"
        folder.mkdir()
        for i in range(n):
            os.link(source, folder / f"img-{i:04d}.png")
        runs[n] = _soak(edge_bundle, folder)
    for n, r in runs.items():
        assert r["images"] == n and r["errors"] == 0
        assert r["open_fds_after"] == r["open_fds_before"], r  # every image file closed
    assert runs[500]["peak_memory_mb"] <= 1.05 * runs[50]["peak_memory_mb"], runs
