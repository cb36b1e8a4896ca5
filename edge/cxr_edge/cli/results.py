"""`cxr-edge results`: the clinic node's results, newest first."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from cxr_edge.cli.common import Failure
from cxr_edge.csv_cells import csv_text


@click.command("results", short_help="The clinic node's results, newest first.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The node's TOML configuration file (its data folder holds the results).")
@click.option("--since", default=None, metavar="ISO-TIME",
              help="Only images received at or after this time, e.g. 2026-12-01 or 2026-12-01T08:00.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="A table to read, CSV, or JSON ({\"results\": [...], \"outbox\": [...]}) for scripts.")
@click.option("--summary", is_flag=True,
              help="Monitoring instead, week by week: shares flagged abnormal, referred and out-of-distribution "
                   "against what the site file (or bundle) expects, agreement with the readers, and warnings.")
@click.option("--outbox", "show_outbox", is_flag=True,
              help="List the outbox instead: every object for every [send] destination, queued, sent or failed, "
                   "with its attempts and last error.")
def command(config_path: Path, since: str | None, fmt: str, summary: bool, show_outbox: bool) -> None:
    """One row per image the node classified: study and SOP instance UIDs (empty for a stick's), when it was
    received, where from (dicom:CALLING_AE or usb:LABEL), and the columns `classify` reports; then, per [send]
    destination, how many results are queued, sent and failed, and the last error.

    Example: cxr-edge results --config /etc/cxr-edge/node.toml --since 2026-12-01 --format csv
    """
    from cxr_edge import DISCLAIMER
    from cxr_edge.cli.common import node_config
    from cxr_edge.node.state import State

    config = node_config(config_path, "results")
    state = State(config.data)
    try:
        if summary:
            return _print_summary(state, config, fmt)
        rows = [_row(r) for r in state.results(_since(since))]
        outbox, items = state.outbox(), state.outbox_items() if show_outbox else []
    finally:
        state.close()
    if show_outbox:
        _print_outbox(items, fmt)
        return
    if fmt == "json":
        click.echo(json.dumps({"notice": DISCLAIMER, "results": rows, "outbox": outbox}, indent=2))
    elif fmt == "csv":
        # stick file names and header values: no formulas, no row split by a carriage return
        click.echo(f"# {DISCLAIMER}\n" + csv_text(_columns(), rows), nl=False)
        for line in _outbox_lines(outbox):
            click.echo(line, err=True)
    else:
        click.echo(_table(rows))
        for line in _outbox_lines(outbox):
            click.echo(line)
        click.echo(DISCLAIMER)


def _print_summary(state, config, fmt: str) -> None:
    """The weekly monitoring of the status page, for a terminal or a script."""
    from dataclasses import asdict

    from cxr_edge import DISCLAIMER
    from cxr_edge.bundle.files import BundleError
    from cxr_edge.bundle.load import load_bundle
    from cxr_edge.site.site_file import SiteError, expected_for, load_site
    from cxr_edge.web.monitoring import weekly

    try:  # the expected shares only: the bundle's manifest and the site file, no interpreter
        bundle = load_bundle(config.model, allow_unverified=True, allow_unsigned=True)
        site = load_site(config.site, bundle.manifest_sha256) if config.site else None
    except (BundleError, SiteError) as exc:
        raise Failure(str(exc)) from None
    expected, source = expected_for(bundle, site)
    weeks = weekly(state, expected, source)
    if fmt == "json":
        click.echo(json.dumps({"notice": DISCLAIMER, "expected": expected, "expected_from": source,
                               "weeks": [asdict(w) for w in weeks]}, indent=2))
        return

    def pct(k, n):
        return f"{k / n:.0%}" if n else ""

    lines = [f"{'week':9s} {'images':>6s} {'abnormal':>9s} {'referred':>9s} {'ood':>5s} {'reviews':>8s} {'agree':>6s}"]
    lines += [f"{w.week:9s} {w.images:6d} {pct(w.abnormal, w.answered):>9s} {pct(w.referred, w.images):>9s} "
              f"{pct(w.ood, w.images):>5s} {w.reviews:8d} {pct(w.agreed, w.reviews):>6s}" for w in weeks]
    shares = ", ".join(f"{k.replace('_', ' ')} {v:.0%}" for k, v in expected.items())
    lines.append(f"expected ({source}): {shares or 'nothing recorded'}")
    lines += [w for week in weeks for w in week.warnings] or ["no week outside its bounds"]
    if fmt == "csv":
        columns = ("week", "images", "answered", "abnormal", "referred", "ood", "reviews", "agreed", "warnings")
        click.echo(csv_text(columns, [{**vars(w), "warnings": " ".join(w.warnings)} for w in weeks]), nl=False)
        return
    click.echo("\n".join(lines))
    click.echo(DISCLAIMER)


def _outbox_lines(outbox: list[dict]) -> list[str]:
    lines = []
    for d in outbox:
        last = f"; last error: {d['last_error']}" if d["last_error"] and (d["queued"] or d["failed"]) else ""
        lines.append(f"outbox {d['destination']}: {d['queued']} queued, {d['sent']} sent, {d['failed']} failed{last}")
    return lines


OUTBOX_KEYS = ("destination", "kind", "object_uid", "study_instance_uid", "state", "attempts", "queued", "sent",
               "next_attempt", "last_error")


def _print_outbox(items: list[dict], fmt: str) -> None:
    def when(seconds):
        return None if seconds is None else datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")

    rows = [{**item, **{k: when(item[k]) for k in ("queued", "sent", "next_attempt")}} for item in items]
    if fmt == "json":
        click.echo(json.dumps({"outbox": rows}, indent=2))
    elif fmt == "csv":
        click.echo(csv_text(OUTBOX_KEYS, rows), nl=False)
    else:
        for r in rows:
            click.echo(f"{r['state']:7s} {r['kind']:8s} {r['destination'][:40]:40s} {r['object_uid']:46s} "
                       f"tries {r['attempts']}" + (f"  {r['last_error']}" if r["last_error"] else ""))
        click.echo(f"{len(rows)} object(s)")


def _columns() -> list[str]:
    from cxr_edge.node.results import NODE_KEYS
    from cxr_edge.run.result import COLUMNS

    return [*NODE_KEYS, *COLUMNS]


def _row(record: dict) -> dict:
    from cxr_edge.node.results import result_row
    from cxr_edge.run.result import for_terminal

    return {key: for_terminal(value) for key, value in result_row(record).items()}


def _since(text: str | None) -> float | None:
    from cxr_edge.node.results import since_time

    try:
        return since_time(text)
    except ValueError as exc:
        raise Failure(f"--since {exc}") from None


def _table(rows: list[dict]) -> str:
    """What a technician needs to find a patient's row in 80 columns: when, the study's accession number, the label
    in words, referred or not, where from (a stick's file); every field is in --format csv or json."""
    from cxr_edge.labels import in_words

    lines = [f"{'received':16s}  {'accession':16s}  {'label':15s}  refer  source"]
    for r in rows:
        when = r["received"][:16].replace("T", " ")
        where = r["source"] if r["sop_instance_uid"] else f"{r['source']} {r['path']}"
        lines.append(f"{when:16s}  {r['accession_number'][:16]:16s}  {(in_words(r['label']) or 'ERROR')[:15]:15s}  "
                     f"{'yes' if r['refer'] else '':5s}  {where}"[:80].rstrip())
    lines.append(f"{len(rows)} image(s)")
    return "\n".join(lines)
