"""The seed's three services in bridge mode (root): each reaches its upstream at the upstream allocation's
own address on the bridge; the bridge gateway is no way round a published port (host ports answer on the
agent's bind address only); stopping the agent removes every namespace."""
from __future__ import annotations

import ipaddress
import os
import secrets
import subprocess
from pathlib import Path

import pytest
import requests

from support.agents import InProcessAgent
from support.net import free_port
from support.sample_apps import UPSTREAM, answer, assert_catalog, expected_chain, sample_app_job
from support.waiting import wait_until


def deploy_bridge_chain(agent: InProcessAgent) -> dict[str, int]:
    """Bridge mode without Connect: tax, then invoice, then order, each reaching its upstream at
    the upstream allocation's own address on the bridge (container port 5000). Host ports answer
    on the agent's bind address only, so the bridge gateway is no way round (issue 10 finding 4)."""
    ports = {n: free_port() for n in ("order", "invoice", "tax")}
    address: dict[str, str] = {}
    for name in ("tax", "invoice", "order"):
        job = sample_app_job(name, ports[name], "bridge", "", ports)
        if name in UPSTREAM:
            var, dest = UPSTREAM[name]
            job["TaskGroups"][0]["Tasks"][0]["Env"][var] = f"http://{address[dest]}:5000"
        agent.client.jobs.register_job({"Job": job})
        wait_until(lambda n=name: (d := agent.client.job.get_deployment(n)) and d["Status"] == "successful", 30)
        (alloc,) = [a for a in agent.ctx.state.values("alloc") if a["JobID"] == name and a["ClientStatus"] == "running"]
        address[name] = alloc["NetworkStatus"]["Address"]
    return ports


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
        ports = deploy_bridge_chain(agent)
        assert answer(ports["order"]) == expected_chain()
        # The published port of tax is not reachable through the bridge gateway address.
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://{next(subnet.hosts())}:{ports['tax']}/", timeout=3)
        assert_catalog(agent, ports)
        allocs = [a for a in agent.ctx.state.values("alloc") if a["ClientStatus"] == "running"]
        assert len({a["NetworkStatus"]["Address"] for a in allocs}) == 3  # one namespace each
    finally:
        agent.close()
        subprocess.run(["ip", "link", "delete", f"nmt{tag}"], capture_output=True)
    assert not list(Path("/run/netns").glob(f"nmt{tag}-*"))  # agent stop removed every namespace
