"""Full-size radiographs as X-ray units write them, through the box: per format, the decode CPU per image
(`load_image`, median of 3 rounds) and `cxr-edge bench FOLDER`'s own figures, run as the box runs it (its own
process, no TensorFlow): end-to-end and inference-only images/s, their ratio, and that process's peak memory;
with an untrained alexnet-edge int8 bundle (speed does not depend on training).

    .venv/bin/python -m benchmarks.clinic [--size 2560] [--images 16] [--json clinic.json]

Synthetic anatomy (cxr_train.synth) at 12 bits with noise, upscaled to full size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

FORMATS = ("png16", "png8", "jpeg", "dicom-explicit", "dicom-jpeg-lossless-sv1", "dicom-j2k-lossless")


def write_images(folder: Path, fmt: str, count: int, size: int) -> None:
    """`count` full-size radiographs of one format in `folder`."""
    from cxr_train.synth import image_rng, make_image
    from cxr_train.synth_dicom import SYNTAXES, write_dicom

    folder.mkdir(parents=True)
    for i in range(count):
        gray = make_image("normal", 512, image_rng(99, "normal", i)).pixels
        full = np.asarray(Image.fromarray(gray).resize((size, size), Image.Resampling.BICUBIC), np.float64)
        stored = np.clip(np.rint(full / 255 * 4095 + np.random.default_rng(i).normal(0, 8, full.shape)), 0, 4095)
        if fmt == "png16":
            Image.fromarray((stored * 16).astype(np.uint16)).save(folder / f"{i:03d}.png")
        elif fmt == "png8":
            Image.fromarray(np.rint(stored / 4095 * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
        elif fmt == "jpeg":
            Image.fromarray(np.rint(stored / 4095 * 255).astype(np.uint8)).save(folder / f"{i:03d}.jpg", quality=92)
        else:
            write_dicom(folder / f"IM{i:04d}", stored, syntax=SYNTAXES[fmt.removeprefix("dicom-")])


def decode_cpu_ms(folder: Path, rounds: int = 3) -> float:
    """CPU ms per image of load_image over the folder, median of `rounds`."""
    from cxr_edge.inputs.images import load_image

    paths = sorted(folder.iterdir())
    times = []
    for _ in range(rounds):
        start = time.process_time()
        for path in paths:
            load_image(path)
        times.append(1000 * (time.process_time() - start) / len(paths))
    return float(np.median(times))


def box_bench(folder: Path, bundle: Path, count: int) -> dict:
    """`cxr-edge bench FOLDER --format json` in a process of its own, as on the box."""
    command = [str(Path(sys.executable).with_name("cxr-edge")), "bench", str(folder), "--model", str(bundle),
               "-n", str(count), "--format", "json", "--allow-unverified"]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def measure(size: int = 2560, images: int = 16, log=print) -> dict:
    """Every format's figures, measured in this one run."""
    from scripts.pi_assets import make_bundle

    figures = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
               "size": size, "images": images, "formats": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_bundle(tmp / "bundle")
        log(f"{images} images of {size} px per format; alexnet-edge int8, untrained; {figures['machine']}")
        log(f"{'format':26s}{'decode CPU ms':>14s}{'e2e img/s':>11s}{'infer img/s':>13s}{'ratio':>7s}{'peak MB':>9s}")
        for fmt in FORMATS:
            folder = tmp / fmt
            write_images(folder, fmt, images, size)
            decode = decode_cpu_ms(folder)
            b = box_bench(folder, tmp / "bundle", images)
            ratio = b["end_to_end"]["images_per_s"] / b["inference"]["images_per_s"]
            figures["formats"][fmt] = row = {
                "decode_cpu_ms": round(decode, 1), "end_to_end_images_per_s": b["end_to_end"]["images_per_s"],
                "inference_images_per_s": b["inference"]["images_per_s"], "ratio": round(ratio, 3),
                "peak_memory_mb": b["peak_memory_mb"]}
            log(f"{fmt:26s}{decode:>14.1f}{row['end_to_end_images_per_s']:>11.2f}"
                f"{row['inference_images_per_s']:>13.1f}{ratio:>7.3f}{row['peak_memory_mb']:>9.0f}")
    return figures


def cli(description: str, measure_figures) -> None:
    """The command line of the full-size benchmarks (this one and benchmarks.worklist): --size, --images, --json,
    -v."""
    from cxr_train.logs import quiet

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--size", type=int, default=2560)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("-v", "--verbose", action="store_true", help="Also show TensorFlow's own log lines.")
    args = parser.parse_args()
    quiet(args.verbose)  # before measure_figures starts TensorFlow
    figures = measure_figures(args.size, args.images)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


def main() -> None:
    cli(__doc__.splitlines()[0], measure)


if __name__ == "__main__":
    main()
