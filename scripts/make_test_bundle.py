"""Regenerate the box tests' committed int8 bundle (tests/edge/tiny-bundle): a `tiny` preset run on 30 synthetic
images per class at 64 px, converted with the gate's limits wide open (the box's tests are about the box, not the
gate: tests/convert checks the gate). Needs the `train` extra (TensorFlow); the box's tests only read the result.

    python scripts/make_test_bundle.py tests/edge/tiny-bundle
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

# The same figures as the training tests' `tiny_run` fixture, so that both describe one model.
TRAIN_ARGS = ["--preset", "tiny", "--epochs-stage1", "8", "--epochs-stage2", "8", "--batch-size", "16",
              "--freeze-epochs", "1"]
DATA = dict(per_class=30, size=64, seed=4)
CALIBRATION_SAMPLES = 32


def make_bundle(out: Path, work: Path) -> dict:
    """Train, convert, and write the bundle folder at `out` (replaced); returns its manifest."""
    from click.testing import CliRunner

    from cxr_convert.bundle import ConvertOptions, build_bundle
    from cxr_edge.site.gate import Limits
    from cxr_train.cli import main as train
    from cxr_train.synth import write_dataset

    data = write_dataset(work / "data", **DATA)
    run = work / "run"
    result = CliRunner().invoke(train, ["fit", str(data), "--out", str(run), *TRAIN_ARGS])
    if result.exit_code != 0:
        raise SystemExit(f"training failed:\n{result.output}")
    options = ConvertOptions(calibration_samples=CALIBRATION_SAMPLES,
                             limits=Limits(1.0, 1.0, 0.0, float_above_chance=False))
    staged = work / "bundle"
    manifest = build_bundle(run, staged, options, log=lambda msg: None)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(staged, out)
    return manifest


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/edge/tiny-bundle")
    with tempfile.TemporaryDirectory() as work:
        manifest = make_bundle(out, Path(work))
    print(f"{out}: deployable={manifest['deployable']}")


if __name__ == "__main__":
    main()
