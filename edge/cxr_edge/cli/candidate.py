"""`cxr-edge candidate`: the candidate bundle against the active one on this clinic's reviews; promotion and
rollback (shadow mode: cxr_edge.node.candidate, cxr_edge.node.bundles)."""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

import click

from cxr_edge.cli.common import Failure

CONFIG = click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                      default=None, help="The node's TOML configuration file.")


def _who(user: str | None) -> str:
    return user or os.environ.get("SUDO_USER") or getpass.getuser()


@click.group("candidate", invoke_without_command=True,
             short_help="Compare the candidate bundle with the active one on the clinic's reviews; promote it.")
@CONFIG
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="A table to read, or JSON for scripts.")
@click.pass_context
def command(ctx, config_path: Path | None, fmt: str) -> None:
    """The candidate bundle ([candidate] in the node's configuration) against the active one, on the images
    clinicians reviewed that both classified: each at its own threshold calibrated from those reviews; sensitivity,
    specificity and agreement with readers with paired 95% intervals and McNemar's test; verdict PASS, FAIL or
    INCONCLUSIVE (with how many more reviewed images would settle it). Nothing is changed.

    Exit status 0: PASS; 1: FAIL or INCONCLUSIVE; 2: usage, configuration or bundle errors.

    Example: cxr-edge candidate --config /etc/cxr-edge/node.toml
    """
    if ctx.invoked_subcommand is not None:
        return
    report, *_ = _compare(config_path)
    click.echo(json.dumps(report, indent=2, default=str) if fmt == "json" else _table(report))
    ctx.exit(0 if report["verdict"] == "PASS" else 1)


def _table(report: dict) -> str:
    from cxr_edge.node.candidate import format_comparison

    return format_comparison(report)


def _compare(config_path: Path | None):
    """(report, node configuration as run, active Classifier, candidate Classifier)."""
    from cxr_edge.cli.common import node_config
    from cxr_edge.node.bundles import PromotionError, effective
    from cxr_edge.node.candidate import evaluate, open_candidate
    from cxr_edge.node.serve import StartError, open_classifier
    from cxr_edge.node.state import State

    if config_path is None:
        raise Failure("give the node's configuration: --config FILE")
    config = node_config(config_path, "results to compare")
    try:
        config = effective(config)
        active = open_classifier(config)
    except (PromotionError, StartError) as exc:
        raise Failure(str(exc)) from None
    problems = []
    candidate = open_candidate(config, active.bundle.manifest_sha256, problems.append)
    if candidate is None:
        raise Failure(problems[0] if problems else "no candidate: set [candidate] model (or stick_folder) in "
                      f"{config_path}, and let the node classify with it")
    state = State(config.data)
    try:
        return evaluate(config, state, active, candidate), config, active, candidate
    finally:
        state.close()


@command.command("promote")
@CONFIG
@click.option("--override", default="", metavar="REASON",
              help="Promote although the verdict is not PASS; REASON is kept in the audit trail with who did it.")
@click.option("--user", default=None, help="Who promotes, for the audit trail [default: the login's name].")
@click.option("--site", "site_name", default="this site", show_default=True, help="The clinic's name, for reports.")
def promote_command(config_path: Path | None, override: str, user: str | None, site_name: str) -> None:
    """Make the candidate the active bundle, with a site file calibrated from the reviews: only on PASS, unless
    --override "REASON". The bundle and site file it replaces are kept (`cxr-edge candidate rollback`). Atomic: a
    power cut leaves the old bundle or the new one active, never none or a mix. Restart the node to run it.

    Exit status 0: promoted; 1: refused (the verdict is not PASS); 2: usage, configuration or bundle errors.
    """
    from cxr_edge.node.bundles import promote
    from cxr_edge.node.state import State
    from cxr_edge.site.calibrate import site_record

    report, config, _, candidate = _compare(config_path)
    click.echo(_table(report))
    override = override.strip()
    if report["verdict"] != "PASS" and not override:
        click.echo(f"not promoted: the verdict is {report['verdict']}; --override \"REASON\" promotes anyway, "
                   "recorded in the audit trail", err=True)
        raise SystemExit(1)
    calibrated = report["calibrated"]["candidate"]
    record = site_record(candidate, report["calibration"], site_name) if calibrated else None
    who = _who(user)
    pointer = promote(config, candidate.bundle.path, candidate.bundle.manifest_sha256, record, who,
                      report["verdict"], override)
    state = State(config.data)
    try:
        state.audit(who, "promoted a candidate bundle", None,
                    f"{candidate.bundle.path.name} ({candidate.bundle.manifest_sha256[:12]}) replaces "
                    f"{report['bundles']['active']['name']}; verdict {report['verdict']}"
                    + (f"; override: {override}" if override else ""))
    finally:
        state.close()
    click.echo(f"promoted: {pointer['model']} with site file {pointer['site'] or 'none (not calibrated)'}; the "
               f"previous bundle is kept. Restart the node to run it (systemctl restart cxr-edge)")


@command.command("rollback")
@CONFIG
@click.option("--user", default=None, help="Who rolls back, for the audit trail [default: the login's name].")
def rollback_command(config_path: Path | None, user: str | None) -> None:
    """Make the bundle and site file the last promotion replaced active again. Restart the node to run it.

    Exit status 0: rolled back; 2: nothing to roll back, or usage errors.
    """
    from cxr_edge.cli.common import node_config
    from cxr_edge.node.bundles import PromotionError, rollback
    from cxr_edge.node.state import State

    if config_path is None:
        raise Failure("give the node's configuration: --config FILE")
    config = node_config(config_path, "bundle to roll back")
    who = _who(user)
    try:
        pointer = rollback(config, who)
    except PromotionError as exc:
        raise Failure(str(exc)) from None
    state = State(config.data)
    try:
        state.audit(who, "rolled back to the previous bundle", None, f"{Path(pointer['model']).name} is active again")
    finally:
        state.close()
    click.echo(f"rolled back: {pointer['model']} with site file {pointer['site'] or 'none'} is active; restart the "
               "node to run it (systemctl restart cxr-edge)")
