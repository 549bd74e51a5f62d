"""The `nomadmesh` command group. Commands live one per module and are registered here.

This is the one place where NomadMeshError becomes a user-facing message and exit code.
"""
from __future__ import annotations

import importlib
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


for _module, _attr in COMMANDS:
    cli.add_command(getattr(importlib.import_module(_module), _attr))
