"""Bridge-mode allocations: own network namespace, ports mapped to the host, nothing left after stop.

Each test agent gets its own bridge, subnet and namespace prefix (NOMADMESH_CNI_* variables), so
the host's `nomad` bridge and other tests' namespaces are never touched."""
from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from support.agents import InProcessAgent
from support.waiting import wait_until
from support.nomad_jobs import get_text

pytestmark = pytest.mark.root

BRIDGE_JOB = """
job "echo" {
  group "echo" {
    network {
      mode = "bridge"
      port "http" { to = 8080 }
    }
    update {
      min_healthy_time = "500ms"
      health_check     = "task_states"
    }
    task "server" {
      driver = "raw_exec"
      config {
        command = "python3"
        args    = ["-c", "%s"]
      }
    }
  }
}
"""
SERVER = ("import http.server;"
          "h=type('H',(http.server.BaseHTTPRequestHandler,),{'do_GET':lambda s:(s.send_response(200),s.end_headers(),"
          "s.wfile.write(s.connection.getsockname()[0].encode()))});"
          "http.server.ThreadingHTTPServer(('0.0.0.0',8080),h).serve_forever()")


def host_snapshot(prefix: str, bridge: str) -> dict[str, Any]:
    netns = sorted(p.name for p in Path("/run/netns").glob(f"{prefix}*")) if Path("/run/netns").is_dir() else []
    links = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True).stdout
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return {"netns": netns, "veths": links.strip(), "rules": rules}


@pytest.fixture
def bridge_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcessAgent]:
    if os.geteuid() != 0:
        pytest.skip("bridge networking needs root")
    tag = secrets.token_hex(3)
    monkeypatch.setenv("NOMADMESH_CNI_BRIDGE", f"nmt{tag}")
    monkeypatch.setenv("NOMADMESH_CNI_SUBNET", f"10.{int(tag[:2], 16)}.{int(tag[2:4], 16)}.0/24")
    monkeypatch.setenv("NOMADMESH_NETNS_PREFIX", f"nmt{tag}-")
    agent = InProcessAgent(tmp_path)
    agent.tag = tag  # type: ignore[attr-defined]
    try:
        yield agent
    finally:
        agent.close()
        subprocess.run(["ip", "link", "delete", f"nmt{tag}"], capture_output=True)


def test_bridge_job_is_reachable_on_its_mapped_port_and_leaves_nothing(bridge_agent: InProcessAgent) -> None:
    agent, tag = bridge_agent, bridge_agent.tag  # type: ignore[attr-defined]
    job = agent.client.jobs.parse(BRIDGE_JOB % SERVER.replace('"', '\\"'), canonicalize=True)
    agent.client.jobs.register_job({"Job": job})

    def running() -> dict[str, Any] | None:
        stubs = [s for s in agent.client.job.get_allocations("echo") if s["ClientStatus"] == "running"]
        return agent.client.allocation.get_allocation(stubs[0]["ID"]) if stubs else None

    alloc = wait_until(running, 30)
    port = alloc["AllocatedResources"]["Shared"]["Ports"][0]
    assert port["To"] == 8080 and 20000 <= port["Value"] <= 32000
    ns_ip = alloc["NetworkStatus"]["Address"]
    assert ns_ip.startswith(f"10.{int(tag[:2], 16)}.{int(tag[2:4], 16)}.")
    body = get_text(f"http://127.0.0.1:{port['Value']}/", 20)
    assert body == ns_ip  # answered inside the namespace, reached through the host port mapping
    during = host_snapshot(f"nmt{tag}-", f"nmt{tag}")
    assert during["netns"] == [f"nmt{tag}-{alloc['ID'][:8]}"] and during["veths"]
    assert alloc["ID"] in during["rules"] or ns_ip in during["rules"]

    agent.client.job.deregister_job("echo", purge=True)
    wait_until(lambda: agent.client.allocation.get_allocation(alloc["ID"])["ClientStatus"] == "complete", 20)
    after = host_snapshot(f"nmt{tag}-", f"nmt{tag}")
    assert after["netns"] == [] and after["veths"] == ""
    assert alloc["ID"] not in after["rules"] and ns_ip not in after["rules"]
    leases = list((agent.ctx.config.data_dir / "cni").rglob("*"))
    assert not any(ns_ip in p.name for p in leases)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port['Value']}/", timeout=2)
