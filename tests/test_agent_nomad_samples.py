"""The seed's three services (services/app.py: order -> invoice -> tax) as Nomad jobs submitted as
Job JSON, in host mode and in bridge mode, answering through their host ports.

Without Connect sidecars (next issue) each service reaches its upstream through the seed's
INV_SVC_URL / TAX_SVC_URL: on 127.0.0.1 in host mode, and through the bridge gateway (the host
side of the portmap) from inside the namespaces in bridge mode."""
from __future__ import annotations

import ipaddress
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from test_agent_nomad_api import InProcessAgent, free_port, wait_for
from test_agent_nomad_run import get_text

APP = str(Path(__file__).resolve().parent.parent / "services" / "app.py")
S = 1_000_000_000
UPSTREAM = {"order": ("INV_SVC_URL", "invoice"), "invoice": ("TAX_SVC_URL", "tax")}


def sample_job(name: str, port: int, mode: str, upstream_host: str, ports: dict[str, int]) -> dict[str, Any]:
    env = {"BIND_ADDR": "0.0.0.0" if mode == "bridge" else "127.0.0.1", "PORT": "${NOMAD_PORT_http}"}
    if name in UPSTREAM:
        var, dest = UPSTREAM[name]
        env[var] = f"http://{upstream_host}:{ports[dest]}"
    return {
        "ID": name, "Name": name, "Type": "service", "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": name, "Count": 1,
            "Networks": [{"Mode": mode, "ReservedPorts": [
                {"Label": "http", "Value": port, "To": {"host": 0, "bridge": 5000}[mode]}]}],
            "Services": [{"Name": name, "PortLabel": "http", "Tags": [name], "Checks": [
                {"Type": "http", "Path": "/health", "Interval": S, "Timeout": S}]}],
            "Update": {"MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": S // 2,
                       "HealthyDeadline": 30 * S},
            "Tasks": [{"Name": name, "Driver": "raw_exec", "Env": env,
                       "Config": {"command": sys.executable, "args": [APP, name]}}],
        }],
    }


def deploy_all(agent: InProcessAgent, mode: str, upstream_host: str) -> dict[str, int]:
    ports = {n: free_port() for n in ("order", "invoice", "tax")}
    for name, port in ports.items():
        agent.client.jobs.register_job({"Job": sample_job(name, port, mode, upstream_host, ports)})
    for name in ports:
        wait_for(lambda: (d := agent.client.job.get_deployment(name)) and d["Status"] == "successful", 30)
    return ports


def deploy_bridge_chain(agent: InProcessAgent) -> dict[str, int]:
    """Bridge mode without Connect: tax, then invoice, then order, each reaching its upstream at
    the upstream allocation's own address on the bridge (container port 5000). Host ports answer
    on the agent's bind address only, so the bridge gateway is no way round (issue 10 finding 4)."""
    ports = {n: free_port() for n in ("order", "invoice", "tax")}
    address: dict[str, str] = {}
    for name in ("tax", "invoice", "order"):
        job = sample_job(name, ports[name], "bridge", "", ports)
        if name in UPSTREAM:
            var, dest = UPSTREAM[name]
            job["TaskGroups"][0]["Tasks"][0]["Env"][var] = f"http://{address[dest]}:5000"
        agent.client.jobs.register_job({"Job": job})
        wait_for(lambda: (d := agent.client.job.get_deployment(name)) and d["Status"] == "successful", 30)
        (alloc,) = [a for a in agent.ctx.state.values("alloc") if a["JobID"] == name and a["ClientStatus"] == "running"]
        address[name] = alloc["NetworkStatus"]["Address"]
    return ports


def expected_chain() -> list[dict[str, Any]]:
    return [{"Service": n, "Version": 1.0} for n in ("Order", "Invoice", "Tax")]


def answer(port: int) -> list[dict[str, Any]]:
    return [json.loads(line) for line in get_text(f"http://127.0.0.1:{port}/", 20).splitlines()]


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[InProcessAgent]:
    a = InProcessAgent(tmp_path)
    try:
        yield a
    finally:
        a.close()


def assert_catalog(agent: InProcessAgent, ports: dict[str, int]) -> None:
    """Each service is in the catalog at its host port with its check passing (Nomad's IDs)."""
    for name, port in ports.items():
        (entry,) = agent.catalog.health(name, passing_only=True)
        svc = entry["Service"]
        assert (svc["Address"], svc["Port"]) == ("127.0.0.1", port)
        assert svc["ID"].startswith("_nomad-task-") and svc["ID"].endswith(f"-group-{name}-{name}-http")
        assert {c["Status"] for c in entry["Checks"]} == {"passing"}


def test_samples_in_host_mode(agent: InProcessAgent) -> None:
    ports = deploy_all(agent, "host", "127.0.0.1")
    assert answer(ports["order"]) == expected_chain()
    assert answer(ports["tax"]) == [{"Service": "Tax", "Version": 1.0}]
    assert_catalog(agent, ports)
    agent.client.job.deregister_job("tax", purge=False)
    wait_for(lambda: agent.catalog.health("tax") == [], 15)  # deregistered when it stops
    broken = requests.get(f"http://127.0.0.1:{ports['order']}/", timeout=10)
    assert broken.status_code == 502 and "invoice" in broken.text  # tax really stopped


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
