"""Issue 4 item 8: sidecars outlive their agent and reconnect to the next one.

The seed's three services with host sidecars (`nomadmesh connect envoy --sidecar-for`, see
tests/support/host_mesh.py). The agent is SIGKILLed: the Envoys keep serving order -> invoice -> tax on
their last configuration for a bounded loop of requests. The agent is started again on the same
data dir and ports: the Envoys reconnect to its xDS server by themselves (fast back-off in the
bootstrap), and an intention written after the restart is enforced (the printed times are
information; the bounds are bench/mesh_agent.py's intention figures).
"""
from __future__ import annotations

import time

import pytest

from support.host_mesh import HostMesh
from support.waiting import seconds_until

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(120)]

LOOP_S = 2.0


def test_sidecars_serve_without_the_agent_and_follow_the_restarted_one(host_mesh: HostMesh) -> None:
    mesh, agent = host_mesh, host_mesh.agent
    agent.stop(kill=True)

    ok = total = 0
    deadline = time.monotonic() + LOOP_S
    while time.monotonic() < deadline:
        total += 1
        ok += mesh.chain_ok()
    assert total >= 10 and ok == total, f"{ok}/{total} calls answered while the agent was dead"
    assert all(p.poll() is None for p in mesh.envoys.values())

    restarted = time.monotonic()
    agent.start()
    ready = time.monotonic() - restarted
    assert mesh.chain_ok()
    mesh.intention("invoice", "tax", "deny")
    took = seconds_until(lambda: mesh.order_fails_naming("invoice", "tax"), 5, what="deny after restart")
    mesh.intention("invoice", "tax", None)
    back = seconds_until(mesh.chain_ok, 5, what="allow again after restart")
    print(f"\nagent dead: {ok}/{total} calls answered in {LOOP_S}s; agent ready {ready:.2f}s after start; "
          f"deny enforced {took * 1000:.0f} ms after the write, delete {back * 1000:.0f} ms")
