"""Every command of every program says what it does in a line that fits, and every option has help text."""

import click
import pytest
from click.testing import CliRunner

from cxr_convert.cli import main as convert_main
from cxr_convert.sign_cli import main as sign_main
from cxr_edge.cli import main as edge_main
from cxr_train.cli import main as train_main

PROGRAMS = {"cxr-edge": edge_main, "cxr-train": train_main, "cxr-convert": convert_main, "cxr-sign": sign_main}


def _commands(name, command):
    yield name, command
    if isinstance(command, click.Group):
        for sub_name, sub in command.commands.items():
            yield from _commands(f"{name} {sub_name}", sub)


ALL = [(name, command) for program, main in PROGRAMS.items() for name, command in _commands(program, main)]


@pytest.mark.parametrize("name,command", ALL, ids=[name for name, _ in ALL])
def test_every_option_has_help(name, command):
    assert command.help and command.help.strip(), f"{name} has no help text"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help and param.help.strip(), f"{name} {'/'.join(param.opts)} has no help text"


@pytest.mark.parametrize("program", [name for name, main in PROGRAMS.items() if isinstance(main, click.Group)])
def test_command_summaries_fit(program):
    """The list of commands in `PROGRAM --help` at 80 columns shows each summary whole, not cut with '...'."""
    main = PROGRAMS[program]
    result = CliRunner().invoke(main, ["--help"], terminal_width=80)
    assert result.exit_code == 0
    listing = result.output.split("Commands:")[1]
    assert "..." not in listing, listing
    for sub in main.commands:
        assert f"  {sub} " in listing
