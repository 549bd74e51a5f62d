"""The dev agent's composition root (issue 11): build_agent(config) builds every part once, wires
each to the parts it needs, starts nothing, and leaves nothing optional to be set later."""
from __future__ import annotations

from pathlib import Path

from nomadmesh.agent.build import build_agent
from nomadmesh.agent.connect.plane import socket_path
from nomadmesh.agent.context import AgentConfig, AgentContext
from nomadmesh.agent.http.parts import ConsulParts, NomadParts


def test_every_part_is_built_and_wired(tmp_path: Path) -> None:
    parts = build_agent(AgentConfig(data_dir=tmp_path / "data", node_name="build-test"))
    try:
        consul = parts.consul_app.extensions["nomadmesh"]
        nomad = parts.nomad_app.extensions["nomadmesh"]
        assert isinstance(consul, ConsulParts) and isinstance(nomad, NomadParts)
        assert consul.ctx is parts.ctx and consul.catalog is parts.catalog and consul.connect is parts.connect
        assert nomad.ctx is parts.ctx and nomad.scheduler is parts.scheduler
        assert parts.scheduler.catalog is parts.catalog  # the runner registers services in this catalog
        xds = f"unix://{socket_path(tmp_path / 'data')}"
        assert parts.connect.xds_address == parts.scheduler.xds_address == xds
        assert not socket_path(tmp_path / "data").exists()  # built, not started: nothing listens
    finally:
        parts.ctx.close()


def test_the_context_carries_no_parts() -> None:
    # Parts are handed over by the composition root, never hung on the context after construction.
    fields = set(AgentContext.__dataclass_fields__)
    assert fields == {"config", "state", "node_id", "cluster_id", "lock"}


def test_a_built_agent_releases_its_data_dir_on_close(tmp_path: Path) -> None:
    config = AgentConfig(data_dir=tmp_path / "data", node_name="build-test")
    first = build_agent(config)
    node_id = first.ctx.node_id
    first.ctx.close()
    second = build_agent(config)  # the data dir lock was released; the identity persisted
    try:
        assert second.ctx.node_id == node_id
    finally:
        second.ctx.close()
