"""`cxr-edge calibrate`: this clinic's operating point from its own labelled images."""

from __future__ import annotations

from pathlib import Path

import click

from cxr_edge.cli.common import Failure, errors_as_failures
from cxr_edge.cli.options import inside, make_classifier, model_options
from cxr_edge.site.site_file import SITE_ENV


@click.command("calibrate", short_help="Set this clinic's threshold from its own labelled images.")
@click.argument("labelled", type=click.Path(exists=True, path_type=Path))
@model_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The site file to write (JSON), atomically; the bundle is never changed.")
@click.option("--site", "site_name", default="this site", show_default=True, help="The clinic's name, for reports.")
@click.option("--target-sensitivity", type=click.FloatRange(0.5, 1.0), default=None,
              help="The sensitivity for abnormal the threshold must reach [default: the bundle's, 0.95].")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=None,
              help="The confidence floor to write [default: the bundle's].")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output on stdout: a table to read, or JSON for scripts.")
def command(labelled: Path, model, threads, allow_unverified, allow_unsigned, out, site_name, target_sensitivity,
              min_confidence, fmt) -> None:
    """Choose this clinic's threshold on its own labelled images and write a site file for `classify --site`.

    LABELLED is a folder of class sub-folders (normal/ and abnormal/, or the four labels) or a CSV of path,label.
    Exit status 0: site file written; 2: too few images (nothing written), or usage and bundle errors.

    Example: cxr-edge calibrate /media/usb/labelled --model bundle/ --site "Clinic 4" --out /etc/cxr-edge/site.json
    """
    import json

    from cxr_edge.atomic import write_atomic
    from cxr_edge.site.calibrate import CalibrationError, format_calibration, site_record
    from cxr_edge.site.calibrate import calibrate as run_calibration

    if inside(out, labelled if labelled.is_dir() else labelled.parent):
        raise Failure(f"--out {out} is inside the labelled folder, which is never written to; write it elsewhere")
    classifier = make_classifier(model, threads, allow_unverified, allow_unsigned, min_confidence)
    target = target_sensitivity or float(classifier.bundle.manifest.get("target_sensitivity") or 0.95)
    with errors_as_failures(CalibrationError, OSError):
        figures = run_calibration(classifier, labelled, target)
    record = site_record(classifier, figures, site_name)
    click.echo(json.dumps(record, indent=2) if fmt == "json" else format_calibration(record))
    if not figures["ready"]:
        raise Failure(f"too few labelled images to set a threshold: {figures['abnormal']} abnormal and "
                      f"{figures['normal']} normal could be used, the floor is {figures['floors']['abnormal']} and "
                      f"{figures['floors']['normal']} (each rate known to within ±10 points); {out} not written")
    with errors_as_failures(OSError):
        write_atomic(out, json.dumps(record, indent=2) + "\n")
    click.echo(f"site file written to {out}: use it with `cxr-edge classify --site {out}` (or ${SITE_ENV})", err=True)
