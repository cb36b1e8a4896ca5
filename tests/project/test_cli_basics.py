import pytest
from click.testing import CliRunner

from cxr_convert.cli import main as convert_main
from cxr_convert.sign_cli import main as sign_main
from cxr_edge.cli import main as edge_main
from cxr_train.cli import main as train_main

PROGRAMS = [("cxr-edge", edge_main), ("cxr-train", train_main), ("cxr-convert", convert_main),
            ("cxr-sign", sign_main)]


@pytest.mark.parametrize("name, program", PROGRAMS)
def test_help_and_version(name, program):
    runner = CliRunner()
    result = runner.invoke(program, ["--help"])
    assert result.exit_code == 0 and "not a diagnosis" in result.output
    result = runner.invoke(program, ["--version"])
    assert result.exit_code == 0 and result.output.startswith(f"{name} ")


def test_edge_version_names_the_interpreter():
    result = CliRunner().invoke(edge_main, ["--version"])
    assert "interpreter: ai-edge-litert" in result.output


def _commands(group):
    return getattr(group, "commands", {}).items()


@pytest.mark.parametrize("name, program", PROGRAMS)
def test_every_command_has_help_with_an_example(name, program):
    for cmd_name, cmd in _commands(program):
        assert cmd.help and "Example:" in cmd.help, f"{name} {cmd_name} lacks help with an example"


def test_synth_and_split_commands(tmp_path):
    runner = CliRunner()
    result = runner.invoke(train_main, ["synth", str(tmp_path / "d"), "--per-class", "4", "--size", "48"])
    assert result.exit_code == 0, result.output
    assert "synthetic" in result.output.lower()
    result = runner.invoke(train_main, ["split", str(tmp_path / "d"), "--out", str(tmp_path / "split.csv")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "split.csv").read_text().startswith("path,label,split,sha256")


def test_split_error_is_one_line_exit_2(tmp_path):
    (tmp_path / "Cats").mkdir()
    result = CliRunner().invoke(train_main, ["split", str(tmp_path), "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 2
    assert "unknown class folder 'Cats'" in result.output and "Traceback" not in result.output
