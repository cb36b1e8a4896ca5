"""`cxr-train`: synthetic data, splits, training and evaluation. Thin: validate, call the library, print."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from cxr_edge import DISCLAIMER
from cxr_edge.cli.common import errors_as_failures, version_option

from .dataset import DatasetError


def verbose_option(command):
    """-v/--verbose: show TensorFlow's, absl's and JAX's own log lines (hidden by default, cxr_train.logs)."""
    def show_or_hide(ctx: click.Context, _param: click.Parameter, verbose: bool) -> bool:
        from .logs import quiet

        quiet(verbose)
        return verbose

    return click.option("-v", "--verbose", is_flag=True, expose_value=False, is_eager=True, callback=show_or_hide,
                        help="Also show TensorFlow's, absl's and JAX's own log lines.")(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=DISCLAIMER)
@version_option("cxr-train")
def main() -> None:
    """Train and evaluate the two-stage chest X-ray models.

    Example: cxr-train fit data/COVID-19_Radiography_Dataset --out runs/first
    """


@main.command(short_help="Write synthetic chest X-rays in the Database's layout.")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--per-class", type=click.IntRange(min=1), required=True, help="Images per class.")
@click.option("--size", type=click.IntRange(min=32), default=299, show_default=True, help="Image side in pixels.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--dicom", is_flag=True,
              help="Write DICOM files as a DR unit sends them (DX, 12-bit, realistic headers, a made-up patient "
                   "each) instead of PNGs: to try the clinic node with storescu.")
@click.option("--syntax", "syntaxes", multiple=True, default=("explicit",), show_default=True,
              type=click.Choice(["explicit", "implicit", "deflated", "rle", "jpeg-baseline", "jpeg-extended-12",
                                 "jpeg-lossless", "jpeg-lossless-sv1", "jpeg-ls", "jpeg-ls-near", "j2k-lossless",
                                 "j2k"]),
              help="With --dicom, the transfer syntaxes to write, taken in turn (repeat the option).")
def synth(out: Path, per_class: int, size: int, seed: int, dicom: bool, syntaxes: tuple[str, ...]) -> None:
    """Write synthetic chest X-rays in the COVID-19 Radiography Database layout (PNG), or with --dicom as DICOM
    files to send to a clinic node.

    Example: cxr-train synth data/synthetic --per-class 250 (and for a node:
    cxr-train synth unit --per-class 3 --size 512 --dicom --syntax explicit --syntax jpeg-ls --syntax j2k)
    """
    if dicom:
        from .synth_dicom import write_unit_dataset

        with errors_as_failures(ValueError, OSError):
            files = write_unit_dataset(out, per_class, size, seed, syntaxes)
        click.echo(f"wrote {len(files)} synthetic DX files ({', '.join(syntaxes)}; {size}x{size}) to {out}")
        click.echo("Synthetic data: for tests and demos only; models trained on it mean nothing for real patients.")
        return
    from .synth import write_dataset

    with errors_as_failures(ValueError, OSError):
        write_dataset(out, per_class, size, seed)
    click.echo(f"wrote {4 * per_class} synthetic images ({per_class} per class, {size}x{size}) to {out}")
    click.echo("Synthetic data: for tests and demos only; models trained on it mean nothing for real patients.")


@main.command(short_help="Make the stratified, duplicate-aware train/val/test split.")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("split.csv"),
              show_default=True, help="Where to write the split (never inside DATA_DIR unless you say so).")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed and images, same split.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.15, show_default=True,
              help="Share of each class's images for validation (threshold and early choices).")
@click.option("--test-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.15, show_default=True,
              help="Share of each class's images held out for the final test.")
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


def _choose_backend(backend: str | None) -> None:
    """Keras reads KERAS_BACKEND once, when first imported: set it before anything imports Keras."""
    wanted = backend or os.environ.get("KERAS_BACKEND") or "tensorflow"
    loaded = sys.modules.get("keras")
    if loaded is not None and loaded.config.backend() != wanted:
        raise click.UsageError(f"Keras is already loaded with the {loaded.config.backend()} backend in this process; "
                               f"run cxr-train in a fresh process for --backend {wanted}")
    os.environ["KERAS_BACKEND"] = wanted


def _report_unreadable(unreadable) -> None:
    if unreadable:
        click.echo(f"left out {len(unreadable)} unreadable image(s):", err=True)
        for exc in unreadable:
            click.echo(f"  {exc}", err=True)


def _library_errors():
    from .fit import RunError
    from .pretrained import InitWeightsError

    return errors_as_failures(DatasetError, RunError, InitWeightsError)


def _print_summary(metrics: dict) -> None:
    c, s1 = metrics["cascade"], metrics["stage1"]
    click.echo(f"cascade accuracy {c['accuracy']:.3f}, macro-F1 {c['macro_f1']:.3f}, "
               f"balanced accuracy {c['balanced_accuracy']:.3f}")
    for label, m in c["per_class"].items():
        click.echo(f"  {label:16s} precision {m['precision']:.3f}  recall {m['recall']:.3f}  F1 {m['f1']:.3f}  n={m['support']}")
    sens = "n/a" if s1["sensitivity"] is None else f"{s1['sensitivity']:.3f}"
    spec = "n/a" if s1["specificity"] is None else f"{s1['specificity']:.3f}"
    click.echo(f"stage 1 at threshold {s1['threshold']:.4f}: sensitivity {sens}, specificity {spec}")


@main.command(short_help="Train stage 1, then stage 2, then evaluate the cascade.")
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="The run folder.")
@click.option("--preset", type=click.Choice(["alexnet", "alexnet-edge", "tiny"]), default="alexnet-edge", show_default=True,
              help="Model: the study's AlexNet, its int8-friendly edge variant, or a tiny one for tests.")
@click.option("--image-size", type=click.IntRange(min=16), default=None, help="Input side in pixels [default: the preset's].")
@click.option("--epochs-stage1", type=click.IntRange(min=1), default=30, show_default=True,
              help="Most epochs for stage 1 (normal vs abnormal); the best on val is kept.")
@click.option("--epochs-stage2", type=click.IntRange(min=1), default=50, show_default=True,
              help="Most epochs for stage 2 (which disease); the best on val is kept.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Images per training step (over all devices).")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Adam learning rate [default: the preset's].")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the split, initial weights, augmentation and data order.")
@click.option("--init-weights", type=click.Path(path_type=Path), default=None,
              help="bvlc_alexnet.npy (ImageNet AlexNet), or a .keras / .weights.h5 file of ours.")
@click.option("--split", "split_path", type=click.Path(path_type=Path), default=None, help="Reuse a saved split.csv.")
@click.option("--target-sensitivity", type=click.FloatRange(0, 1, min_open=True), default=0.95, show_default=True,
              help="Stage 1 threshold: the highest reaching this sensitivity for abnormal on val.")
@click.option("--freeze-epochs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Epochs to train the head only, trunk frozen, before fine-tuning everything.")
@click.option("--stage2-from-stage1/--stage2-from-init", default=True, show_default=True,
              help="Start stage 2 from stage 1's trained trunk, or from --init-weights.")
@click.option("--patience", type=click.IntRange(min=1), default=6, show_default=True, help="Early stopping patience (epochs).")
@click.option("--overwrite", is_flag=True, help="Replace a finished run in --out.")
@click.option("--backend", type=click.Choice(["tensorflow", "jax"]), default=None,
              help="Keras backend [default: $KERAS_BACKEND, else tensorflow]. jax trains data-parallel over every "
                   "device it sees, and over several processes (docs/training.md, \"Training on several GPUs or machines\").")
@click.option("--coordinator", metavar="HOST:PORT", default=None,
              help="Several processes (jax): process 0's address, the same for every process.")
@click.option("--num-processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Several processes (jax): how many take part, one per machine (or per GPU).")
@click.option("--process-id", type=click.IntRange(min=0), default=0, show_default=True,
              help="Several processes (jax): this one's number, 0..N-1; process 0 writes the run folder.")
@verbose_option
def fit(data_dir: Path, out: Path, preset, image_size, epochs_stage1, epochs_stage2, batch_size, learning_rate, seed,
        init_weights, split_path, target_sensitivity, freeze_epochs, stage2_from_stage1, patience, overwrite,
        backend, coordinator, num_processes, process_id) -> None:
    """Train stage 1, then stage 2, then evaluate the cascade on the held-out test split.

    Example: cxr-train fit data/COVID-19_Radiography_Dataset --out runs/first --preset alexnet-edge
    """
    _choose_backend(backend)
    from .fit import FitConfig
    from .fit import fit as run_fit

    cfg = FitConfig(str(data_dir), str(out), preset, image_size, epochs_stage1, epochs_stage2, batch_size, learning_rate,
                    seed, str(init_weights) if init_weights else None, str(split_path) if split_path else None,
                    target_sensitivity, freeze_epochs, stage2_from_stage1, patience, overwrite,
                    coordinator=coordinator, num_processes=num_processes, process_id=process_id)
    with _library_errors():
        metrics = run_fit(cfg, log=lambda msg: click.echo(msg, err=True))
    if process_id:
        return
    _print_summary(metrics)
    click.echo(f"run folder: {out} (report: {out / 'eval' / 'report.md'}, curves: {out / 'curves.png'})")


@main.command(short_help="Recompute a saved run's evaluation tables on one split.")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(["test", "val", "train", "all"]), default="test", show_default=True,
              help="Which of the run's images to evaluate on.")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Where the run's images are now, if they moved.")
@verbose_option
def evaluate(run_dir: Path, split: str, data_dir) -> None:
    """Recompute a saved run's evaluation tables on one split (test: eval/, others: eval-SPLIT/).

    Example: cxr-train evaluate runs/first --split val
    """
    from .fit import evaluate_run

    with _library_errors():
        metrics, out = evaluate_run(run_dir, split, data_dir)
    _print_summary(metrics)
    click.echo(f"wrote {out}")


@main.command(short_help="Grad-CAM overlays: where each image's label came from.")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the overlays go [default: RUN_DIR/explain]; never the images' own folder.")
@verbose_option
def explain(run_dir: Path, images: tuple[Path, ...], out: Path | None) -> None:
    """Grad-CAM overlays from a run's float models: where each image's label came from.

    IMAGE may be a file or a folder (its images, recursively, leaving out the Database's masks/ folders).
    Writes <stem>.gradcam.png per image, with the cascade's label and probability on it: stage 2's map for a
    disease, stage 1's for normal.

    Example: cxr-train explain runs/first data/COVID/images/COVID-1.png --out review/
    """
    from .explain import write_overlays

    paths = [p for image in images for p in (_folder_images(image) if image.is_dir() else [image])]
    if not paths:
        raise click.UsageError("no images found in the folders given (PNG, JPEG, BMP, TIFF or DICOM)")
    with _library_errors(), errors_as_failures(ValueError):
        results = write_overlays(run_dir, paths, out or run_dir / "explain")
    for r in results:
        click.echo(f"{r.image}: {r.label} {r.probability:.3f} -> {r.overlay}" if r.overlay else
                   f"{r.image}: error: {r.error}")
    click.echo(DISCLAIMER)
    if any(r.error for r in results):
        raise SystemExit(1)


def _folder_images(folder: Path) -> list[Path]:
    """A folder's images, without the lung masks the Database keeps in masks/ folders (they are not radiographs)."""
    from cxr_edge.inputs.discover import find_images

    return [p for p in find_images(folder) if "masks" not in p.relative_to(folder).parts[:-1]]
