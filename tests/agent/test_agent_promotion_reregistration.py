"""A promoted canary is registered again with its normal tags and meta, make before break: every
commit of the agent's state during that re-registration still holds the service and its sidecar.

Why it matters: the sidecar is the upstream endpoint callers' Envoys dial. At a promotion the old
allocation is deregistered (shutdown_delay) while the canary is registered again; a sidecar
deregistered first and registered a moment later left the service's cluster with no endpoint in
between, and callers got Envoy's 503 "no healthy upstream" (the release e2e's promotion gap).

The allocation runner and the catalog are the agent's own, on a real state; the commits are read
with the state's own commit listener, so the check sees every intermediate state, not a sample.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nomadmesh.agent.consul.catalog import Catalog
from nomadmesh.agent.context import AgentConfig, AgentContext
from nomadmesh.agent.nomad import connect_hook
from nomadmesh.agent.nomad.runner import AllocRunner
from nomadmesh.agent.state import Change
from nomadmesh.render.ownership import CANARY_META_KEY
from support.nomad_jobs import rendered_sample_job

ALLOC_ID = "c0ffee00-0000-0000-0000-000000000001"


def invoice_alloc(canary: bool) -> dict[str, Any]:
    """A running bridge-mode invoice allocation with a sidecar; a canary registers canary_meta."""
    job = rendered_sample_job("invoice")
    tg = job["TaskGroups"][0]
    tg["Services"][0]["CanaryMeta"] = {CANARY_META_KEY: "true"}
    ports = [{"Label": p["Label"], "Value": 25000 + i, "To": -1}
             for i, p in enumerate(connect_hook.extra_ports(job, tg))]
    return {"ID": ALLOC_ID, "Job": job, "TaskGroup": tg["Name"], "JobVersion": 1, "ClientStatus": "running",
            "NetworkStatus": {"Address": "10.9.0.5"}, "AllocatedResources": {"Shared": {"Ports": ports}},
            "DeploymentStatus": {"Canary": canary, "Healthy": True}}


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[tuple[AgentContext, AllocRunner]]:
    ctx = AgentContext.open(AgentConfig(data_dir=tmp_path / "data", node_name="test-node"))
    catalog = Catalog(ctx)
    catalog.start()
    try:
        yield ctx, AllocRunner(ctx, platform=None, catalog=catalog, xds_address="",  # type: ignore[arg-type]
                               alloc_id=ALLOC_ID, notify=lambda: None)
    finally:
        catalog.stop()
        ctx.close()


def test_a_promoted_canary_is_registered_again_without_a_moment_unregistered(
        runner: tuple[AgentContext, AllocRunner]) -> None:
    ctx, alloc_runner = runner
    alloc_runner.refresh(invoice_alloc(canary=True))
    services = {r.key: r.value for r in ctx.state.records("service")}
    assert len(services) == 2  # invoice and its sidecar
    assert all(s["Meta"].get(CANARY_META_KEY) == "true" for s in services.values())

    removed: list[str] = []

    def on_commit(_index: int, changes: list[Change], _event: str | None) -> None:
        removed.extend(c.key for c in changes if c.kind == "service" and c.after is None)

    ctx.state.on_commit(on_commit)
    alloc_runner.refresh(invoice_alloc(canary=False))  # the promotion: Canary cleared

    assert removed == []  # no commit left invoice or its sidecar out
    after = {r.key: r.value for r in ctx.state.records("service")}
    assert set(after) == set(services)
    assert all(CANARY_META_KEY not in s["Meta"] for s in after.values())  # the normal meta, sidecar too
