"""`cxr-edge`: the clinic box's command line, one module per command. Thin: each command validates, calls
the library, prints."""

from __future__ import annotations

import logging

import click

from cxr_edge import DISCLAIMER
from cxr_edge.cli import bench, calibrate, candidate, classify, evaluate, info, results, reviews, serve, user
from cxr_edge.cli.common import version_option
from cxr_edge.cli.options import interpreter_version


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=DISCLAIMER)
@version_option("cxr-edge", interpreter_version)
def main() -> None:
    """Chest X-ray pre-diagnosis on a clinic box.

    Example: cxr-edge classify /media/usb --model bundle/
    """
    # pydicom logs a traceback for each file it cannot decode; the report's error column already says why.
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    # and it warns about a malformed value by quoting it (a patient's birth date, on stderr and in the node's log)
    from pydicom import config

    config.settings.reading_validation_mode = config.IGNORE


for _module in (classify, info, calibrate, evaluate, bench, serve, results, reviews, user, candidate):
    main.add_command(_module.command)
