"""`cxr-edge`: the clinic box's command line. Thin: each command validates, calls the library, prints."""

from __future__ import annotations

import click

from . import DISCLAIMER
from .clitools import version_option


def _interpreter_version() -> str:
    from .interpreter import NoInterpreterError, backend

    try:
        b = backend()
        return f"interpreter: {b.name} {b.version}"
    except NoInterpreterError as exc:
        return f"interpreter: none ({exc})"


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=DISCLAIMER)
@version_option("cxr-edge", _interpreter_version)
def main() -> None:
    """Chest X-ray pre-diagnosis on a clinic box.

    Example: cxr-edge classify /media/usb --model bundle/
    """
