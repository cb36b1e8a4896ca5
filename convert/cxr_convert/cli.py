"""`cxr-convert`: a training run folder to a deployable TFLite bundle. Thin: validate, call, print."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cxr_edge import DISCLAIMER
from cxr_edge.cli.common import errors_as_failures, version_option
from cxr_train.cli import verbose_option


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=DISCLAIMER)
@version_option("cxr-convert")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="The bundle folder.")
@click.option("--quantization", type=click.Choice(["int8", "float16", "dynamic", "float32"]), default="int8",
              show_default=True, help="int8: full-integer with raw uint8 pixels in, what the box runs fastest.")
@click.option("--calibration-samples", type=click.IntRange(min=1), default=300, show_default=True,
              help="Training images (stratified by class) that calibrate int8 ranges.")
@click.option("--max-accuracy-drop", type=click.FloatRange(min=0), default=0.01, show_default=True,
              help="The gate: the cascade's accuracy may drop by at most this (its whole 95% interval).")
@click.option("--max-f1-drop", type=click.FloatRange(min=0), default=0.02, show_default=True,
              help="The gate: each class's F1 may drop by at most this (its whole 95% interval).")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=0.98, show_default=True,
              help="The gate: at least this share of images keep the float model's label (its whole 95% interval).")
@click.option("--min-float-accuracy", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="The float model's cascade accuracy must reach this, besides beating chance.")
@click.option("--parity-split", type=click.Choice(["val+test", "test", "val"]), default="val+test", show_default=True,
              help="The run's held-out images the gate compares the models on.")
@click.option("--parity-data", type=click.Path(exists=True, file_okay=False), default=None,
              help="A labelled folder (class folders, as for training) whose images join the parity set; "
                   "exact copies of training images are left out.")
@click.option("--bootstrap-samples", type=click.IntRange(min=100), default=2000, show_default=True,
              help="Resamples of the paired bootstrap behind each drop's 95% interval.")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Where the run's images are now, if they moved.")
@click.option("--debug-quantization", is_flag=True, help="Add a per-layer quantization error report to parity.json.")
@click.option("--search", is_flag=True,
              help="Try quantizations in order of cost on the box (int8, other calibrations, the worst layers out of "
                   "int8 one at a time, float16, float32) until one passes the gate on the validation images; the "
                   "verdict then comes from the test images, which no choice depended on.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=0.6, show_default=True,
              help="The box refers images whose label's probability is below this.")
@click.option("--archive", is_flag=True, help="Also write BUNDLE_DIR.cxrb, the bundle as one file.")
@click.option("--sign", "sign_key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Sign the bundle with this private key (NAME.key from `cxr-sign keygen`).")
@verbose_option
def main(run_dir: Path, out: Path, quantization, calibration_samples, max_accuracy_drop, max_f1_drop, min_agreement,
         min_float_accuracy, parity_split, parity_data, bootstrap_samples, data_dir, debug_quantization, search,
         min_confidence, archive, sign_key) -> None:
    """Convert a training run to a TFLite bundle and check it against the float models.

    Exit status 0: the gate passed (deployable); 1: it failed or was inconclusive, or the float model is no
    better than chance (the bundle is written, marked not deployable); 2: usage or data errors.

    Example: cxr-convert runs/first --out bundles/first
    """
    from .bundle import ConvertError, ConvertOptions, build_bundle
    from cxr_edge.site.gate import Limits, verdict_line

    key = None
    if sign_key is not None:  # asked before converting: a wrong passphrase should not cost a conversion
        from .sign_cli import signing_key

        key = signing_key(sign_key)
    limits = Limits(max_accuracy_drop, max_f1_drop, min_agreement, min_float_accuracy)
    options = ConvertOptions(quantization, calibration_samples, limits, data_dir, debug_quantization, min_confidence,
                             parity_split=parity_split, parity_data=parity_data, bootstrap_samples=bootstrap_samples,
                             search=search)
    with errors_as_failures(ConvertError, ValueError, OSError):
        manifest = build_bundle(run_dir, out, options, log=lambda msg: click.echo(msg, err=True))
    if key is not None:
        from .sign_cli import key_name
        from .signing import SigningError, sign_bundle

        with errors_as_failures(SigningError, OSError):
            sign_bundle(out, key, key_name(sign_key))
        click.echo(f"bundle signed with {key_name(sign_key)!r}", err=True)
    if archive:
        from cxr_edge.bundle.archive import write_archive
        from cxr_edge.bundle.files import ARCHIVE_SUFFIX

        with errors_as_failures(OSError):
            packed = write_archive(out, out.with_name(out.name + ARCHIVE_SUFFIX))
        click.echo(f"single-file bundle written to {packed}", err=True)
    click.echo((out / "parity.md").read_text())
    if manifest["training_data"]["synthetic"]:
        click.echo("WARNING: trained on synthetic data: results mean nothing for real patients.")
    # The verdict closes the output on stdout, after the table: stderr may reach the terminal out of order
    # (cxr_train.logs filters each descriptor through its own pipe).
    gate = manifest["parity_gate"]
    click.echo(verdict_line(gate))
    for failure in gate["failures"]:
        click.echo(f"  {failure}")
    if not manifest["deployable"]:
        click.echo(f"bundle written to {out} with \"deployable\": false")
        sys.exit(1)
    click.echo(f"deployable bundle written to {out}")
