"""A hand-set run that full int8 breaks, for `cxr-convert --search` (docs/conversion.md, "When int8 fails"): stage 1
reads the image's brightness through a layer with one output a thousand times the others (scripts/handmade.py,
outlier_models). Plain int8 FAILs the gate on it; keeping that layer and its reader in float passes.

    python -m scripts.make_outlier_run OUT            # OUT/data (coded images), OUT/run (the outlier models)
    python -m scripts.make_outlier_run OUT --healthy  # the same images, the coded models int8 keeps
    cxr-convert OUT/run --out OUT/bundle --search
    python -m scripts.make_outlier_run OUT --test-bundle tests/edge/mixed-bundle  # the box tests' mixed bundle
"""

from __future__ import annotations

import argparse
from pathlib import Path

PER_CLASS = 400  # 1,600 images: 240 validation and 240 test, past the 189 the default gate needs to PASS


def make_outlier_run(out: Path, healthy: bool = False, per_class: int = PER_CLASS) -> Path:
    """OUT/data, if not there yet, and OUT/run (or OUT/healthy-run); returns the run folder."""
    from scripts.handmade import coded_models, outlier_models, write_coded_dataset, write_run

    data = out / "data"
    if not data.is_dir():
        write_coded_dataset(data, per_class=per_class, seed=5)
    return write_run(out / ("healthy-run" if healthy else "run"), data, coded_models() if healthy else outlier_models())


def make_test_bundle(run: Path, out: Path) -> None:
    """The search's bundle for the outlier run, what the box's tests load (tests/edge/mixed-bundle), replaced."""
    from cxr_convert.bundle import ConvertOptions, build_bundle

    manifest = build_bundle(run, out, ConvertOptions(search=True), log=lambda msg: None)
    if not manifest["deployable"]:
        raise SystemExit(f"the search found no deployable bundle for {run}: see {out / 'parity.md'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--healthy", action="store_true", help="the coded models, which int8 keeps")
    parser.add_argument("--test-bundle", type=Path, help="also write the search's bundle for the run here")
    args = parser.parse_args()
    run = make_outlier_run(args.out, args.healthy)
    print(f"run written to {run}")
    if args.test_bundle:
        make_test_bundle(run, args.test_bundle)
        print(f"bundle written to {args.test_bundle}")


if __name__ == "__main__":
    main()
