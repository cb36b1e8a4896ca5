"""Click helpers shared by the three command lines (cxr-edge, cxr-train, cxr-convert)."""

from __future__ import annotations

import contextlib

import click


class Failure(click.ClickException):
    """A usage, data or bundle error: one line on stderr, exit status 2, no traceback."""

    exit_code = 2


@contextlib.contextmanager
def errors_as_failures(*types: type[BaseException]):
    """Turn the library's own error types into a one-line Failure at the CLI boundary."""
    try:
        yield
    except types as exc:
        raise Failure(str(exc)) from None


def version_option(name: str, extra=None):
    """`--version`: the program's version, plus what `extra()` returns (e.g. the interpreter)."""
    from cxr_edge import __version__

    def show(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if not value or ctx.resilient_parsing:
            return
        click.echo(f"{name} {__version__}" + (f", {extra()}" if extra else ""))
        ctx.exit()

    return click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=show,
                        help="Show the version and exit.")


def node_config(config_path, needs: str | None = None):
    """The node's configuration for a command that reads its data folder; with `needs` (what the command shows, e.g.
    "results"), a Failure saying so when the node has not run yet."""
    from cxr_edge.node.config import ConfigError, load_config
    from cxr_edge.node.state import DATABASE

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise Failure(str(exc)) from None
    if needs and not (config.data / DATABASE).exists():
        raise Failure(f"no {needs} yet: {config.data / DATABASE} does not exist (has `cxr-edge serve --config "
                      f"{config_path}` run?)")
    return config
