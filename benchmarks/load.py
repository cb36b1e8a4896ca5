"""Load: classify 5,000 small images against 500 and show that memory stays flat, no file handle leaks, and
throughput holds from start to end. Each count runs in a fresh process.

Run: .venv/bin/python benchmarks/load.py [--counts 500 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.edge import make_bundle
from cxr_edge.inputs.images import prepare
from cxr_edge.run.bench import generated_images


def run_soak(bundle: Path, folder: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "cxr_edge.run.soak", str(bundle), str(folder)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs=2, default=(500, 5000))
    parser.add_argument("--preset", default="alexnet-edge")
    args = parser.parse_args()
    small_n, large_n = args.counts
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        originals = generated_images(tmp, 50, size=160)
        from cxr_train.alexnet import PRESETS

        size = PRESETS[args.preset].image_size
        make_bundle(args.preset, tmp / "bundle", np.concatenate([prepare(p, size)[None] for p in originals[:8]]), "int8")
        results = {}
        for n in (small_n, large_n):
            folder = tmp / f"n{n}"
            folder.mkdir()
            for i in range(n):
                os.link(originals[i % len(originals)], folder / f"img-{i:05d}.png")
            results[n] = run_soak(tmp / "bundle", folder)
    for n, r in results.items():
        print(f"{n:5d} images: peak memory {r['peak_memory_mb']} MB, open fds {r['open_fds_before']} -> "
              f"{r['open_fds_after']}, images/s by quarter {r['images_per_s_by_quarter']}")
    ratio = results[large_n]["peak_memory_mb"] / results[small_n]["peak_memory_mb"]
    q = results[large_n]["images_per_s_by_quarter"]
    print(f"peak memory ratio {large_n}/{small_n}: {ratio:.3f} (target <= 1.05); "
          f"last/first quarter throughput at {large_n}: {q[-1] / q[0]:.2f}")


if __name__ == "__main__":
    main()
