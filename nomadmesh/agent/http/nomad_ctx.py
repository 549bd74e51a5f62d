"""The agent context and scheduler from inside a Nomad API view (the app's NomadParts)."""
from __future__ import annotations

from nomadmesh.agent.context import AgentContext
from nomadmesh.agent.http.parts import nomad_parts
from nomadmesh.agent.nomad.scheduler import Scheduler


def ctx() -> AgentContext:
    return nomad_parts().ctx


def scheduler() -> Scheduler:
    return nomad_parts().scheduler


def notify() -> None:
    scheduler().notify()
