"""`cxr-edge reviews`: what clinicians recorded on the node's screen, one row per reviewed image."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from cxr_edge.csv_cells import csv_text
from cxr_edge.reasons import codes_text
from cxr_edge.run.result import Result, for_terminal

COLUMNS = ("study_id", "image_id", "received", "label", "p_normal", "p_lung_opacity", "p_viral_pneumonia", "p_covid19",
           "refer", "reason", "error", "reader_finding", "reader_agrees", "reviewer", "reviewed", "confirmation",
           "confirmed", "label_for_calibration", "reason_codes")
IDENTIFIERS = ("patient_id", "patient_name", "accession_number", "study_instance_uid", "sop_instance_uid")


@click.command("reviews", short_help="Export the clinicians' reviews, one row per reviewed image.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The node's TOML configuration file (its data folder holds the reviews).")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True,
              help="CSV for a spreadsheet, or JSON for scripts.")
@click.option("--with-identifiers", is_flag=True,
              help="Add patient ID and name, accession number and the DICOM UIDs (left out by default: the export "
                   "is for research and audit, which rarely need them).")
def command(config_path: Path, fmt: str, with_identifiers: bool) -> None:
    """Every reviewed image: the box's probabilities, label and referral, the latest reader's finding and whether
    the reader agreed, the latest confirmatory result, their dates, and the label it counts as in
    `calibrate --from-reviews`. Internal study and image numbers, never patient data, unless --with-identifiers.

    Example: cxr-edge reviews --config /etc/cxr-edge/node.toml --format csv > reviews.csv
    """
    from cxr_edge import DISCLAIMER
    from cxr_edge.cli.common import node_config
    from cxr_edge.node.state import State
    from cxr_edge.node.truth import reviewed_rows, truth_of

    config = node_config(config_path, "reviews")
    state = State(config.data)
    try:
        records = reviewed_rows(state)
    finally:
        state.close()
    columns = (*COLUMNS, *(IDENTIFIERS if with_identifiers else ()))
    rows = [_row(r, truth_of(r, config.web.confirmatory_findings), columns) for r in records]
    if fmt == "json":
        click.echo(json.dumps({"notice": DISCLAIMER, "reviews": rows}, indent=2, ensure_ascii=False))
        return
    # names from headers: no spreadsheet formulas, no row split by a carriage return
    click.echo(f"# {DISCLAIMER}\n" + csv_text(columns, rows), nl=False)


def _row(record: dict, truth: str, columns) -> dict:
    def when(seconds):
        return None if seconds is None else datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")

    result = Result.from_record(record["path"], record)
    values = {**record, "reason": result.reason, "reason_codes": codes_text(result.reasons),
              "received": when(record["received"]), "reviewed": when(record["reviewed"]),
              "confirmed": when(record["confirmed"]), "reader_finding": record["finding"],
              "reader_agrees": None if record["agree"] is None else bool(record["agree"]),
              "refer": bool(record["refer"]), "confirmation": record["confirmation"] or "",
              "label_for_calibration": truth}
    return {k: for_terminal(values[k]) for k in columns}
