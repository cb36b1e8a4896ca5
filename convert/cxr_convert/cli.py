"""`cxr-convert`: a training run folder to a deployable TFLite bundle."""

from __future__ import annotations

import click

from cxr_edge import DISCLAIMER
from cxr_edge.clitools import version_option


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=DISCLAIMER)
@version_option("cxr-convert")
def main() -> None:
    """Convert a training run to a TFLite bundle and check it against the float models.

    Example: cxr-convert runs/first --out bundles/first
    """
