"""`cxr-edge serve`: the clinic node, in the foreground (systemd supervises it)."""

from __future__ import annotations

from pathlib import Path

import click

from cxr_edge.cli.common import Failure


@click.command("serve", short_help="Run the clinic node: receive DICOM, classify as images arrive.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The node's TOML configuration file (keys: model, data, site, trusted_keys; sections [dicom], "
                   "[usb], [send], [web], [candidate]: docs/box.md).")
@click.option("--check", is_flag=True,
              help="Check the configuration and the bundle's self-test, print them, and exit 0 (usable) or 2.")
def command(config_path: Path, check: bool) -> None:
    """Run the clinic node in the foreground: a DICOM listener (C-ECHO, C-STORE) whose every received image is
    classified as it arrives, with its state in one SQLite database under the data folder; with [send], each
    result goes to the PACS (DICOM SR and heatmap) and the EHR (FHIR), retried until they take it. SIGTERM stops
    it (exit 0).

    Exit status 0: stopped by a signal, or --check found everything usable; 2: the configuration, a
    permission, the bundle or its self-test is wrong (the message says what).

    Example: cxr-edge serve --config /etc/cxr-edge/node.toml
    """
    from cxr_edge.node.config import ConfigError, load_config
    from cxr_edge.node.serve import (
        StartError,
        active_config,
        bundle_warnings,
        check_permissions,
        describe,
        open_classifier,
        run,
        send_warnings,
        token_present,
    )

    try:
        config = load_config(config_path)
        if check:
            check_permissions(config)
            config = active_config(config)
            token_present(config)
            for line in describe(config) + [f"WARNING: {w}" for w in send_warnings(config)]:
                click.echo(line)
            classifier = open_classifier(config)
            click.echo(classifier.selftest.summary())
            for warning in bundle_warnings(classifier):
                click.echo(f"WARNING: {warning}")
            click.echo("configuration usable")
            return
        from cxr_edge.web.server import start_web

        run(config, start_web=start_web)
    except (ConfigError, StartError) as exc:
        raise Failure(str(exc)) from None
