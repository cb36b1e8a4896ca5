"""`cxr-train`: synthetic data, splits, training and evaluation. Thin: validate, call the library, print."""

from __future__ import annotations

from pathlib import Path

import click

from cxr_edge import DISCLAIMER
from cxr_edge.clitools import errors_as_failures, version_option

from .dataset import DatasetError


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=DISCLAIMER)
@version_option("cxr-train")
def main() -> None:
    """Train and evaluate the two-stage chest X-ray models.

    Example: cxr-train fit data/COVID-19_Radiography_Dataset --out runs/first
    """


@main.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--per-class", type=click.IntRange(min=1), required=True, help="Images per class.")
@click.option("--size", type=click.IntRange(min=32), default=299, show_default=True, help="Image side in pixels.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
def synth(out: Path, per_class: int, size: int, seed: int) -> None:
    """Write synthetic chest X-rays in the COVID-19 Radiography Database layout.

    Example: cxr-train synth data/synthetic --per-class 250
    """
    from .synth import write_dataset

    with errors_as_failures(ValueError, OSError):
        write_dataset(out, per_class, size, seed)
    click.echo(f"wrote {4 * per_class} synthetic images ({per_class} per class, {size}x{size}) to {out}")
    click.echo("Synthetic data: for tests and demos only; models trained on it mean nothing for real patients.")


@main.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("split.csv"),
              show_default=True, help="Where to write the split (never inside DATA_DIR unless you say so).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.15, show_default=True)
@click.option("--test-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.15, show_default=True)
def split(data_dir: Path, out: Path, seed: int, val_fraction: float, test_fraction: float) -> None:
    """Make the stratified, duplicate-aware train/val/test split of a data folder as split.csv.

    Example: cxr-train split data/COVID-19_Radiography_Dataset --out split.csv
    """
    from .dataset import make_split, scan, write_split

    with errors_as_failures(DatasetError):
        found = scan(data_dir)
        _report_unreadable(found.unreadable)
        records = make_split(found.records, seed, val_fraction, test_fraction)
    with errors_as_failures(OSError):
        write_split(records, out)
    for name in ("train", "val", "test"):
        counts = {lb: sum(r.label == lb and r.split == name for r in records) for lb in found.counts()}
        click.echo(f"{name:5s} " + "  ".join(f"{lb}={n}" for lb, n in counts.items()))
    click.echo(f"wrote {out}")


def _report_unreadable(unreadable) -> None:
    if unreadable:
        click.echo(f"left out {len(unreadable)} unreadable image(s):", err=True)
        for exc in unreadable:
            click.echo(f"  {exc}", err=True)
