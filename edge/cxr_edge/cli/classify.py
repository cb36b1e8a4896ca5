"""`cxr-edge classify`: every image of a folder (a USB stick), never writing to it."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cxr_edge.cli.common import Failure, errors_as_failures
from cxr_edge.cli.options import inside, language_option, make_classifier, model_options, site_option


@click.command("classify", short_help="Classify every image in a folder (a USB stick).")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_options
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default=None,
              help="Output on stdout [default: table on a terminal, csv otherwise].")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the report to this file, atomically: .csv, .json, .jsonl, or .html (a worklist "
                   "with every image, most urgent first, that opens offline in any browser).")
@click.option("--recursive/--no-recursive", default=True, show_default=True, help="Look in sub-folders.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=None,
              help="Refer images whose label's probability is below this [default: the bundle's, 0.6].")
@click.option("--restart", is_flag=True, help="Discard the journal of an interrupted run instead of resuming it.")
@click.option("--heatmaps", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write an occlusion heatmap PNG per image into this folder (slower; off by default); an "
                   ".html report shows them too.")
@click.option("--html-heatmaps", is_flag=True, help="Compute heatmaps for the .html report only (slower).")
@click.option("--sr", "sr_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write a DICOM structured report (TID 1500) and a heatmap secondary capture, in the image's own "
                   "study, for each DICOM image into this folder (slower: the heatmap).")
@click.option("--fhir", "fhir_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write a FHIR R4 transaction Bundle (DiagnosticReport and Observations) for each image into this "
                   "folder.")
@site_option
@language_option
def command(folder: Path, model, threads, allow_unverified, allow_unsigned, fmt, output, recursive, min_confidence,
             restart, heatmaps, html_heatmaps, sr_dir, fhir_dir, site_path, language) -> None:
    """Classify every image in FOLDER (a USB stick); never writes to FOLDER.

    Exit status 0: every image classified; 1: some files could not be read (they have error rows);
    2: usage or bundle errors; 3: no image in FOLDER at all (is the stick mounted?).

    Example: cxr-edge classify /media/usb --model bundle/ --output ~/reports/today.csv --language es
    """
    from cxr_edge.language import speaking

    with speaking(language):
        _classify(folder, model, threads, allow_unverified, allow_unsigned, fmt, output, recursive, min_confidence,
                  restart, heatmaps, html_heatmaps, sr_dir, fhir_dir, site_path)


def _classify(folder: Path, model, threads, allow_unverified, allow_unsigned, fmt, output, recursive, min_confidence,
              restart, heatmaps, html_heatmaps, sr_dir, fhir_dir, site_path) -> None:
    from cxr_edge.reports.formats import render, report_format, summary_text
    from cxr_edge.run.classify import run_folder

    if output is not None:
        if not output.parent.is_dir():
            raise Failure(f"--output {output}: the folder {output.parent} does not exist; create it first, or "
                          "write the report elsewhere")
        if inside(output, folder):
            raise Failure(f"--output {output} is inside the input folder {folder}, which is never written to; "
                          "write the report elsewhere")
        with errors_as_failures(ValueError):
            html = report_format(output) == "html"
    if html_heatmaps and (output is None or not html):
        raise Failure("--html-heatmaps needs an HTML report: add --output REPORT.html")
    for option, out_dir in (("--heatmaps", heatmaps), ("--sr", sr_dir), ("--fhir", fhir_dir)):
        if out_dir is not None:
            if inside(out_dir, folder):
                raise Failure(f"{option} {out_dir} is inside the input folder {folder}, which is never written to; "
                              "choose a folder elsewhere")
            with errors_as_failures(OSError):
                out_dir.mkdir(parents=True, exist_ok=True)
    classifier = make_classifier(model, threads, allow_unverified, allow_unsigned, min_confidence, site_path)
    records = None
    if sr_dir is not None or fhir_dir is not None:
        from cxr_edge.record.dicom import Producer
        from cxr_edge.record.files import Recorder

        records = Recorder(folder, Producer.of(classifier), sr_dir, fhir_dir)
    fmt = fmt or ("table" if sys.stdout.isatty() else "csv")
    progress = _Progress() if sys.stderr.isatty() else None
    update = progress.update if progress else None
    journal = visuals = None
    if output is None:
        results, summary = run_folder(classifier, folder, recursive, update, heatmaps, records=records)
    else:
        from cxr_edge.pictures.visuals import Visuals, visuals_dir
        from cxr_edge.reports.formats import classify_into_report

        with errors_as_failures(OSError):
            if html:
                visuals = Visuals(visuals_dir(output), heatmaps=html_heatmaps or heatmaps is not None)
            results, summary, journal = classify_into_report(
                classifier, folder, output, visuals=visuals, recursive=recursive, restart=restart, progress=update,
                heatmaps=heatmaps, records=records)
    if progress:
        progress.close()
    if journal is not None and journal.set_aside:
        click.echo(f"a journal from another run (other bundle, folder or floor) was set aside as "
                   f"{journal.path.name}.old", err=True)
    if summary.resumed:
        click.echo(f"resumed an interrupted run: {summary.resumed} image(s) taken from {journal.path.name}", err=True)
    if records is not None:
        for problem in records.problems:
            click.echo(f"note: {problem}", err=True)
        where = " and ".join(str(d) for d in (sr_dir, fhir_dir) if d is not None)
        click.echo(f"{records.written} DICOM/FHIR result file(s) written to {where}", err=True)
    click.echo(render(fmt, results, summary, classifier), nl=False)
    if fmt != "table":
        click.echo(summary_text(summary), err=True)
        from cxr_edge.site.site_file import monitor

        for warning in monitor(results, classifier):
            click.echo(warning, err=True)
    if output is not None:
        click.echo(f"report written to {output}", err=True)
    if summary.images == 0:  # an unmounted stick looks like an empty one: never a quiet success
        click.echo(f"WARNING: no image found in {folder}: if it is a USB stick, check that it is mounted and holds "
                   "the radiographs; nothing was classified", err=True)
        sys.exit(3)
    if summary.errors == summary.images:
        click.echo(f"WARNING: none of the {summary.images} image(s) in {folder} could be read: nothing was "
                   "classified (the errors are listed above)", err=True)
    sys.exit(1 if summary.errors else 0)


class _Progress:
    """A progress bar on stderr, for terminals only (reports on stdout stay clean)."""

    WIDTH = 30

    def __init__(self):
        self.shown = False

    def update(self, done: int, total: int) -> None:
        filled = self.WIDTH * done // max(total, 1)
        click.echo(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total} images", err=True, nl=False)
        self.shown = True

    def close(self) -> None:
        if self.shown:
            click.echo("", err=True)
