"""`naap --help` imports no command module; its lines are the commands' own; `naap predictors` lists the registry."""
import argparse
import importlib
import subprocess
import sys

from naap import cli
from naap.board.predictors import REGISTRY
from tests.conftest import REPO


def naap(*args):
    return subprocess.run([sys.executable, "-m", "naap", *args], cwd=REPO, capture_output=True, text=True)


def test_help_imports_no_heavy_module():
    code = ("import sys; from naap.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as exit:\n    assert exit.code == 0\n"
            "heavy = [m for m in ('torch', 'pandas', 'sklearn', 'matplotlib', 'naap.rebuild.build', 'naap.cli.inspect') "
            "if m in sys.modules]\nassert not heavy, heavy")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "leaderboard" in out.stdout and "predictors" in out.stdout


def test_help_lines_are_the_ones_each_command_registers():
    """Oracle: every command module imported and its add_command run into a real parser."""
    registered = {}
    subparsers = argparse.ArgumentParser().add_subparsers()
    for module in dict.fromkeys(module for module, _ in cli.COMMANDS.values()):
        importlib.import_module(module).add_command(subparsers)
    for action in subparsers._choices_actions:
        registered[action.dest] = action.help
    assert set(registered) == set(cli.COMMANDS)
    assert {name: line for name, (_, line) in cli.COMMANDS.items()} == registered and all(registered.values())
    out = naap("--help")
    assert out.returncode == 0
    for command in cli.COMMANDS:
        assert command in out.stdout


def test_an_unknown_command_lists_the_known_ones():
    out = naap("bogus")
    assert out.returncode == 2 and "invalid choice: 'bogus'" in out.stderr and "'predictors'" in out.stderr


def test_predictors_lists_every_registered_predictor_with_family_and_features():
    out = naap("predictors")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["NAME", "FAMILY", "FEATURES", "DESCRIPTION"]
    for predictor in REGISTRY.values():
        line = next(line for line in lines if line.startswith(predictor.name + "  "))
        after_name = line[len(predictor.name):].split("  ")
        cells = [cell.strip() for cell in after_name if cell.strip()]
        assert cells[:2] == [predictor.family, predictor.features]
    assert f"{len(REGISTRY)} predictors" in out.stdout
