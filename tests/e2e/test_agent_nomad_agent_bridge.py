"""Bridge allocations of the real `nomadmesh agent --dev` process (root): reachable on their port, checks
passing, and namespace, veths and iptables rules gone after the agent's clean stop."""
from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support.agents import clients
from support.net import free_port
from support.nomad_jobs import get_text
from support.sample_apps import sample_app_job
from support.waiting import wait_until


@pytest.mark.root
def test_bridge_allocations_are_released_when_the_agent_stops(
        agent_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip("bridge networking needs root")
    tag = secrets.token_hex(3)
    monkeypatch.setenv("NOMADMESH_CNI_BRIDGE", f"nmt{tag}")
    monkeypatch.setenv("NOMADMESH_CNI_SUBNET", f"10.{int(tag[:2], 16)}.{int(tag[2:4], 16)}.0/24")
    monkeypatch.setenv("NOMADMESH_NETNS_PREFIX", f"nmt{tag}-")
    agent = agent_factory()
    try:
        n, c = clients(agent)
        port = free_port()
        n.jobs.register_job({"Job": sample_app_job("tax", port, "bridge", "", {"tax": port})})
        wait_until(lambda: (d := n.job.get_deployment("tax")) and d["Status"] == "successful", 30)
        assert get_text(f"http://127.0.0.1:{port}/").startswith('{"Service": "Tax"')
        assert [ch["Status"] for ch in c.health.checks("tax")[1]] == ["passing"]
        assert len(list(Path("/run/netns").glob(f"nmt{tag}-*"))) == 1
        assert agent.stop() == 0
        assert list(Path("/run/netns").glob(f"nmt{tag}-*")) == []
        veths = subprocess.run(["ip", "-o", "link", "show", "master", f"nmt{tag}"], capture_output=True, text=True)
        assert veths.stdout.strip() == ""
        assert f"nmt{tag}" not in subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    finally:
        agent.stop()
        subprocess.run(["ip", "link", "delete", f"nmt{tag}"], capture_output=True)
