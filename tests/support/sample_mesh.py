"""The seed's sample mesh (order -> invoice -> tax behind the ingress gateway) deployed on an agent in
bridge mode: the agent's network settings, deploying the rendered samples, calling order."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from nomadmesh.definitions import load_spec
from nomadmesh.deploy.target import consul_client, nomad_client, target_from_env
from nomadmesh.render import render
from support.meshkit import envoy_pids
from support.paths import SERVICES
from support.waiting import wait_until

NAMES = ("order", "invoice", "tax")
GATEWAY = "ingress"  # services/ingress: Nomad's ingress gateway, listener 8080 -> order
CHAIN = [{"Service": n, "Version": 1.0} for n in ("Order", "Invoice", "Tax")]
# What a test on the sample mesh needs: root (bridge networking) and Debian's CNI plugins.
NEEDS_BRIDGE = [pytest.mark.root,
                pytest.mark.skipif(not Path("/usr/lib/cni/bridge").exists(), reason="CNI plugins missing")]


def sample_mesh(agent_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """An agent on a bridge, subnet and namespace prefix of its own; on exit nothing of it may be left."""
    tag = secrets.token_hex(2)
    prefix = f"nme{tag}-"
    monkeypatch.setenv("NOMADMESH_CNI_BRIDGE", f"nme{tag}")
    subnet = f"10.{200 + int(tag[:2], 16) % 50}.{int(tag[2:], 16)}"
    monkeypatch.setenv("NOMADMESH_CNI_SUBNET", f"{subnet}.0/24")
    monkeypatch.setenv("NOMADMESH_NETNS_PREFIX", prefix)
    # The sample jobs run `python3`: make it this venv's (Flask and waitress are installed here).
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    agent = agent_factory()
    target = target_from_env({}, nomad_addr=agent.nomad_addr, consul_addr=agent.consul_addr)
    try:
        yield {"agent": agent, "nomad": nomad_client(target), "consul": consul_client(target), "prefix": prefix,
               "bridge_ip": f"{subnet}.1"}
    finally:
        agent.stop()
        # Nothing is left behind: no Envoy of this agent, no namespace with its prefix.
        assert wait_until(lambda: not envoy_pids(str(agent.alloc_dir)), 10, what="envoys gone")
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert prefix not in names, names


def order_call(port: int) -> requests.Response:
    return requests.get(f"http://127.0.0.1:{port}/", timeout=5)


def deploy_samples(nomad: Any, services: Path = SERVICES) -> int:
    """Register the rendered samples (the three services and the gateway, from `services`), wait for
    their deployments; the gateway listener's host port, through which the host calls order."""
    jobs = render(load_spec(services), "json")
    for name in (*NAMES, GATEWAY):
        nomad.jobs.register_job(json.loads(jobs[f"{name}.nomad.json"]))
    for name in (*NAMES, GATEWAY):
        wait_until(lambda n=name: (d := nomad.job.get_deployment(n)) and d["Status"] == "successful", 60,
                   step=0.2, what=f"{name} deployment successful")
    return host_port(nomad, GATEWAY, "listener_8080")[0]


def host_port(nomad: Any, job: str, label: str) -> tuple[int, dict[str, Any]]:
    (stub,) = [a for a in nomad.job.get_allocations(job) if a["DesiredStatus"] == "run"]
    alloc = nomad.allocation.get_allocation(stub["ID"])
    ports = {p["Label"]: p for p in alloc["AllocatedResources"]["Shared"]["Ports"]}
    return int(ports[label]["Value"]), alloc
