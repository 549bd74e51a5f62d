"""The seed's three services in bridge mode (root): each reaches its upstream through the bridge gateway
(the host side of the portmap) from inside its namespace; stopping the agent removes every namespace."""
from __future__ import annotations

import ipaddress
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from support.agents import InProcessAgent
from support.sample_apps import answer, assert_catalog, deploy_all, expected_chain


@pytest.mark.root
def test_samples_in_bridge_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip("bridge networking needs root")
    tag = secrets.token_hex(3)
    subnet = ipaddress.ip_network(f"10.{int(tag[:2], 16)}.{int(tag[2:4], 16)}.0/24")
    monkeypatch.setenv("NOMADMESH_CNI_BRIDGE", f"nmt{tag}")
    monkeypatch.setenv("NOMADMESH_CNI_SUBNET", str(subnet))
    monkeypatch.setenv("NOMADMESH_NETNS_PREFIX", f"nmt{tag}-")
    agent = InProcessAgent(tmp_path)
    try:
        ports = deploy_all(agent, "bridge", str(next(subnet.hosts())))  # the bridge's gateway address
        assert answer(ports["order"]) == expected_chain()
        assert_catalog(agent, ports)
        allocs = [a for a in agent.ctx.state.values("alloc") if a["ClientStatus"] == "running"]
        assert len({a["NetworkStatus"]["Address"] for a in allocs}) == 3  # one namespace each
    finally:
        agent.close()
        subprocess.run(["ip", "link", "delete", f"nmt{tag}"], capture_output=True)
    assert not list(Path("/run/netns").glob(f"nmt{tag}-*"))  # agent stop removed every namespace
