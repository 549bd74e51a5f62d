"""Access to the agent context and scheduler from inside a Nomad API view."""
from __future__ import annotations

from typing import Any

from quart import current_app

from nomadmesh.agent.context import AgentContext


def ctx() -> AgentContext:
    return current_app.extensions["nomadmesh"]["ctx"]


def scheduler() -> Any:
    return current_app.extensions["nomadmesh"]["scheduler"]


def notify() -> None:
    s = scheduler()
    if s is not None:
        s.notify()
