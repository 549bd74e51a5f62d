"""The `nomadmesh` command group. Commands live one per module and are registered here.

This is the one place where NomadMeshError becomes a user-facing message and exit code.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Any

import click

from nomadmesh.errors import NomadMeshError

# (module, attribute) of every command; each module holds one click command (or group).
COMMANDS: tuple[tuple[str, str], ...] = (
    ("nomadmesh.cli.agent", "agent"),
    ("nomadmesh.cli.init", "init_command"),
    ("nomadmesh.cli.templates", "templates_group"),
    ("nomadmesh.cli.render", "render_command"),
    ("nomadmesh.cli.validate", "validate_command"),
    ("nomadmesh.cli.graph", "graph_command"),
    ("nomadmesh.cli.ui", "ui_command"),
    ("nomadmesh.cli.top", "top_command"),
    ("nomadmesh.cli.intent", "intent_group"),
    ("nomadmesh.cli.mesh", "mesh_group"),
    ("nomadmesh.cli.plan", "plan_command"),
    ("nomadmesh.cli.deploy", "deploy_command"),
    ("nomadmesh.cli.history", "history_command"),
    ("nomadmesh.cli.rollback", "rollback_command"),
    ("nomadmesh.cli.release", "release_command"),
    ("nomadmesh.cli.promote", "promote_command"),
    ("nomadmesh.cli.abort", "abort_command"),
    ("nomadmesh.cli.status", "status_command"),
    ("nomadmesh.cli.logs", "logs_command"),
    ("nomadmesh.cli.destroy", "destroy_command"),
    ("nomadmesh.cli.up", "up_command"),
    ("nomadmesh.cli.down", "down_command"),
    ("nomadmesh.cli.connect", "connect_group"),
)


class _LazyCommands(MutableMapping[str, click.Command]):
    """The group's commands by name, each module imported when its command is first looked up:
    `nomadmesh render` then never imports deploy's HTTP clients (a tenth of a second or more)."""

    def __init__(self, commands: tuple[tuple[str, str], ...]) -> None:
        # Each module is named after its command (nomadmesh.cli.render holds `render`).
        self._where = {module.rpartition(".")[2]: (module, attr) for module, attr in commands}
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            module, attr = self._where[name]  # KeyError for an unknown name, as a dict gives
            self._loaded[name] = getattr(importlib.import_module(module), attr)
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        self._where.pop(name, None)
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter({**self._where, **self._loaded})

    def __len__(self) -> int:
        return len({**self._where, **self._loaded})


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NomadMeshError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(e.exit_code)


@click.group(cls=_Group)
@click.version_option(package_name="nomadmesh")
def cli() -> None:
    """nomadmesh: describe services once, get a Consul Connect service mesh on Nomad."""


cli.commands = _LazyCommands(COMMANDS)
