"""`cxr-edge calibrate`: this clinic's operating point from its own labelled images."""

from __future__ import annotations

from pathlib import Path

import click

from cxr_edge.cli.common import Failure, errors_as_failures
from cxr_edge.cli.options import inside, make_classifier, model_options
from cxr_edge.site.site_file import SITE_ENV


@click.command("calibrate", short_help="Set this clinic's threshold from its own labelled images or reviews.")
@click.argument("labelled", type=click.Path(exists=True, path_type=Path), required=False)
@click.option("--from-reviews", is_flag=True,
              help="Take the labelled images from the clinic node's reviewed studies (the reader's finding, or the "
                   "confirmatory result where it names one) instead of LABELLED; needs --config.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="With --from-reviews: the node's TOML configuration file (its bundle and database).")
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
def command(labelled: Path | None, from_reviews: bool, config_path: Path | None, model, threads, allow_unverified,
            allow_unsigned, out, site_name, target_sensitivity, min_confidence, fmt) -> None:
    """Choose this clinic's threshold on its own labelled images and write a site file for `classify --site`.

    LABELLED is a folder of class sub-folders (normal/ and abnormal/, or the four labels) or a CSV of path,label;
    or, with --from-reviews --config FILE, the studies clinicians reviewed on the node's screen.
    Exit status 0: site file written; 2: too few images (nothing written), or usage and bundle errors.

    Example: cxr-edge calibrate /media/usb/labelled --model bundle/ --site "Clinic 4" --out /etc/cxr-edge/site.json
    """
    if from_reviews:
        if labelled is not None or config_path is None:
            raise Failure("--from-reviews takes the images from the node: give --config FILE and no LABELLED folder")
        return _from_reviews(config_path, threads, out, site_name, target_sensitivity, min_confidence, fmt)
    if labelled is None:
        raise Failure("give LABELLED (a folder of class sub-folders, or a CSV of path,label), or --from-reviews "
                      "--config FILE")
    from cxr_edge.site.calibrate import CalibrationError
    from cxr_edge.site.calibrate import calibrate as run_calibration

    if inside(out, labelled if labelled.is_dir() else labelled.parent):
        raise Failure(f"--out {out} is inside the labelled folder, which is never written to; write it elsewhere")
    classifier = make_classifier(model, threads, allow_unverified, allow_unsigned, min_confidence)
    target = target_sensitivity or float(classifier.bundle.manifest.get("target_sensitivity") or 0.95)
    with errors_as_failures(CalibrationError, OSError):
        figures = run_calibration(classifier, labelled, target)
    _report(classifier, figures, site_name, out, fmt)


def _report(classifier, figures: dict, site_name: str, out: Path, fmt: str, what: str = "labelled images") -> None:
    import json

    from cxr_edge.atomic import write_atomic
    from cxr_edge.site.calibrate import format_calibration, site_record

    record = site_record(classifier, figures, site_name)
    click.echo(json.dumps(record, indent=2) if fmt == "json" else format_calibration(record))
    if not figures["ready"]:
        raise Failure(f"too few {what} to set a threshold: {figures['abnormal']} abnormal and "
                      f"{figures['normal']} normal could be used, the floor is {figures['floors']['abnormal']} and "
                      f"{figures['floors']['normal']} (each rate known to within ±10 points); {out} not written")
    with errors_as_failures(OSError):
        write_atomic(out, json.dumps(record, indent=2) + "\n")
    click.echo(f"site file written to {out}: use it with `cxr-edge classify --site {out}` (or ${SITE_ENV})", err=True)


def _from_reviews(config_path: Path, threads, out: Path, site_name: str, target_sensitivity, min_confidence,
                  fmt: str) -> None:
    """The node's reviewed images, with their stored results: the bundle is the node's, so the rows are the ones
    `calibrate` would compute on the same images."""
    from cxr_edge.cli.common import node_config
    from cxr_edge.node.state import State
    from cxr_edge.site.calibrate import CalibrationError, figures_of
    from cxr_edge.node.truth import calibration_set

    config = node_config(config_path, "reviews")
    classifier = make_classifier(config.model, threads, False, False, min_confidence)
    target = target_sensitivity or float(classifier.bundle.manifest.get("target_sensitivity") or 0.95)
    state = State(config.data)
    try:
        results, truth, left_out = calibration_set(state, config.web.confirmatory_findings)
    finally:
        state.close()
    if not results:
        raise Failure("no reviewed study yet: review studies on the node's screen (a finding for each), then run "
                      "this again")
    if left_out:
        click.echo(f"left out {left_out} reviewed image(s) the reader found not assessable (no finding to learn "
                   "from)", err=True)
    with errors_as_failures(CalibrationError):
        figures = figures_of(classifier, results, truth, target)
    _report(classifier, figures, site_name, out, fmt, "reviewed images")
