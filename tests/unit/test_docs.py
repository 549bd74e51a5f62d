"""Every command is documented: help with an Example, and a README reference generated from --help."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import click
import pytest

import nomadmesh
from nomadmesh.cli.main import cli
from support.paths import REPO


def _reference_module():
    spec = importlib.util.spec_from_file_location("cli_reference", REPO / "scripts" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


REFERENCE = _reference_module()
COMMAND_PATHS = REFERENCE.command_paths(cli)


def test_there_are_commands() -> None:
    assert {"agent", "graph", "render", "validate"} <= {p[0] for p in COMMAND_PATHS}


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p))
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert command.help and command.help.strip(), f"nomadmesh {' '.join(path)} has no help"
    if not isinstance(command, click.Group):
        assert "Example" in command.help, f"nomadmesh {' '.join(path)} help has no Example"


def test_readme_cli_reference_is_current() -> None:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "cli_reference.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_readme_starts_with_the_demo_and_test_commands() -> None:
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in first_block.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines(), ".ci/run must run the README's test command exactly"


def test_public_names_are_exported_and_sorted() -> None:
    assert nomadmesh.__all__ == sorted(nomadmesh.__all__)
    for name in nomadmesh.__all__:
        assert getattr(nomadmesh, name) is not None
