"""`cxr-edge evaluate`: the study's tables on a labelled folder."""

from __future__ import annotations

from pathlib import Path

import click

from cxr_edge import DISCLAIMER
from cxr_edge.cli.common import errors_as_failures
from cxr_edge.cli.options import make_classifier, model_options


@click.command("evaluate", short_help="Confusion matrix and per-class F1 on a labelled folder.")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output on stdout: a table to read, or JSON for scripts.")
def command(folder: Path, model, threads, allow_unverified, allow_unsigned, fmt) -> None:
    """Confusion matrix (Table 2) and per-class precision/recall/F1 (Table 3) on a labeled folder.

    FOLDER holds one sub-folder per class (Normal/, COVID/, ... or the label names), images directly
    inside or in images/.

    Example: cxr-edge evaluate test-images/ --model bundle/
    """
    from cxr_edge.run.evaluate import LabeledFolderError, evaluate_folder, format_table

    classifier = make_classifier(model, threads, allow_unverified, allow_unsigned)
    with errors_as_failures(LabeledFolderError):
        result = evaluate_folder(classifier, folder)
    origin = classifier.bundle.origin
    warnings = [w for w in [classifier.selftest.warning(), origin.warning()] if w]
    if fmt == "json":
        import json

        click.echo(json.dumps({**result, "notice": DISCLAIMER, "warnings": warnings,
                               "selftest": classifier.selftest.as_dict(), "origin": origin.as_dict()}, indent=2))
    else:
        click.echo(format_table(result))
        click.echo("\n".join([classifier.selftest.summary(), origin.summary(), *warnings, DISCLAIMER]))
