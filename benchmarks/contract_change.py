"""What image contract versions 2 to 4 do to a bundle's outputs on full-size files, against version 1's full
decode, next to what quantization itself does (the bundle's parity.json: int8 against the float model). Version 2
decodes large JPEGs at a reduced scale, version 3 JPEG 2000 DICOM at a reduced resolution, version 4 scales DICOM
with no window from its 0.5th..99.5th percentile instead of its minimum..maximum when outliers make the one less
than half the other. 16-bit PNG must come out unchanged.

    .venv/bin/python -m benchmarks.contract_change RUN_DIR BUNDLE [--size 2560] [--outlier-span 0.5]

The run's test split, each image upscaled to SIZE px (bicubic, with sensor-like noise) and written as JPEG,
16-bit PNG, uncompressed DICOM and JPEG 2000 DICOM (no window in their headers, as many units write them); both
paths through the bundle's int8 models (cxr_edge's Classifier).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageOps
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import JPEG2000Lossless

from cxr_edge import levels
from cxr_edge.bundle.load import load_bundle
from cxr_edge.inputs.images import load_image, prepare
from cxr_edge.inputs.levels import to_uint8
from cxr_edge.run.classify import Classifier
from cxr_train.dataset import read_split, select
from cxr_train.synth_dicom import write_dicom


def version_1(path: Path, size: int) -> np.ndarray:
    """The model input as contract version 1 made it: full decode, the DICOM header's window or else the image's
    minimum..maximum, then Pillow's bilinear straight to size."""
    if path.suffix == ".jpg":
        with Image.open(path) as img:
            gray = np.asarray(ImageOps.exif_transpose(img).convert("L"))
    elif path.suffix in (".dcm", ".j2k"):
        ds = pydicom.dcmread(path)
        gray = to_uint8(apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds))  # the full range (tails 0)
    else:
        gray = load_image(path)  # no size: no reduced-scale decoding
    return np.asarray(Image.fromarray(gray).resize((size, size), Image.Resampling.BILINEAR))[:, :, np.newaxis]


def full_size_files(source: Path, folder: Path, index: int, size: int) -> list[Path]:
    gray = np.asarray(Image.open(source).convert("L"), np.float64)
    big = np.asarray(Image.fromarray(gray.astype(np.float32), "F").resize((size, size), Image.Resampling.BICUBIC))
    stored = np.clip(np.rint(big / 255 * 4095 + np.random.default_rng(index).normal(0, 6, big.shape)), 0, 4095)
    eight = np.rint(stored / 4095 * 255).astype(np.uint8)
    paths = [folder / f"{index:04d}.jpg", folder / f"{index:04d}.png"]
    Image.fromarray(eight).save(paths[0], quality=92)
    Image.fromarray((stored * 16).astype(np.uint16)).save(paths[1])
    paths.append(write_dicom(folder / f"{index:04d}.dcm", stored))
    paths.append(write_dicom(folder / f"{index:04d}.j2k", stored, syntax=JPEG2000Lossless))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--size", type=int, default=2560)
    parser.add_argument("--outlier-span", type=float, default=None,
                        help="measure another contract 4: 1 takes the 0.5th..99.5th percentile range of every "
                             "windowless DICOM, 0 never (default: the contract's, "
                             f"{levels.OUTLIER_SPAN}: when it covers less than that part of the full range)")
    args = parser.parse_args()
    if args.outlier_span is not None:
        levels.OUTLIER_SPAN = args.outlier_span
    config = json.loads((args.run_dir / "config.json").read_text())
    test = select(read_split(args.run_dir / "split.csv"), "test")
    classifier = Classifier(load_bundle(args.bundle, allow_unverified=True))
    size = classifier.size
    inputs = {kind: {"v1": [], "v2": []} for kind in ("jpg", "png", "dcm", "j2k")}
    with tempfile.TemporaryDirectory() as tmp:
        for i, record in enumerate(test):
            for path in full_size_files(Path(config["data_dir"]) / record.path, Path(tmp), i, args.size):
                kind = path.suffix[1:]
                inputs[kind]["v1"].append(version_1(path, size))
                inputs[kind]["v2"].append(prepare(path, size))
                path.unlink()
    quantization = json.loads((args.bundle / "parity.json").read_text())["models"]["quantized"]["cascade"]
    print(f"{len(test)} test images at {args.size} px, {classifier.bundle.manifest['quantization']} bundle "
          f"{args.bundle}, outlier span {levels.OUTLIER_SPAN}")
    print(f"{'compared':44s}{'label agreement':>16s}{'mean |dp|':>11s}{'max |dp|':>10s}")
    print(f"{'quantization: int8 vs float (parity.json)':44s}{quantization['agreement']:>16.3f}"
          f"{quantization['mean_abs_prob_diff']:>11.4f}{quantization['max_abs_prob_diff']:>10.4f}")
    for kind, pair in inputs.items():
        (l1, p1), (l2, p2) = (classifier.predict_padded(np.stack(pair[v]))[:2] for v in ("v1", "v2"))
        diff = np.abs(p1 - p2)
        print(f"{'contract now vs full decode, ' + kind:44s}{float((l1 == l2).mean()):>16.3f}{float(diff.mean()):>11.4f}"
              f"{float(diff.max()):>10.4f}")


if __name__ == "__main__":
    main()
