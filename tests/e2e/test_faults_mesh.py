"""Faults 1 and 5 (issue 7) on the sample mesh, order -> invoice -> tax, with real Envoy sidecars in
bridge mode on a real agent subprocess (its own bridge, subnet and namespace prefix).

1. The agent SIGKILLed under steady traffic: no request fails while it is down (the sidecars keep
   their last config), and after a restart on the same data dir the jobs, versions, intentions, KV,
   CA root (same ID) and the running allocations (same IDs, same task processes) are all intact and
   adopted; the restarted agent's xDS server takes the Envoys back (a new deny is enforced).
5. A sidecar's Envoy SIGKILLed: the agent restarts it per the group's restart block (Restarts = 1,
   a new pid), traffic resumes, and nothing leaks: one Envoy per allocation, one listener on the
   proxy port, the same namespaces; at the end no namespace or Envoy is left.

Fault 2 (a crash-looping task fails its deployment and auto_revert restores the previous version)
is covered by tests/agent/test_agent_nomad_run.py::test_crashing_update_fails_deployment_and_auto_reverts.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from nomadmesh.definitions import load_spec
from nomadmesh.deploy.target import consul_client, nomad_client, target_from_env
from nomadmesh.render import render
from support.meshkit import pids_with
from support.paths import REPO
from support.waiting import wait_until

NAMES = ("order", "invoice", "tax")
CHAIN = ["Order", "Invoice", "Tax"]

pytestmark = [
    pytest.mark.root,  # bridge networking
    pytest.mark.envoy,
    pytest.mark.skipif(not Path("/usr/lib/cni/bridge").exists(), reason="CNI plugins missing"),
    pytest.mark.timeout(150),
]




def netns_list(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return sorted(line.split()[0] for line in out.splitlines() if line.startswith(prefix))


def chain(port: int) -> bool:
    r = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    return r.status_code == 200 and [json.loads(line)["Service"] for line in r.text.splitlines()] == CHAIN


def sample_jobs(tmp: Path) -> dict[str, dict[str, Any]]:
    """The samples, with a 1 s restart delay (Nomad's default 15 s would make fault 5 slow)."""
    root = tmp / "services"
    shutil.copytree(REPO / "services", root)
    for name in NAMES:
        path = root / name / "service.json"
        doc = json.loads(path.read_text())
        doc["nomad"]["restart"] = {"attempts": 2, "interval": "5m", "delay": "1s", "mode": "fail"}
        path.write_text(json.dumps(doc))
    return {name: json.loads(text) for name, text in render(load_spec(root), "json").items()}


@pytest.fixture
def deployed_mesh(agent_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch,
                  tmp_path: Path) -> Iterator[dict[str, Any]]:
    tag = secrets.token_hex(2)
    prefix = f"nmf{tag}-"
    monkeypatch.setenv("NOMADMESH_CNI_BRIDGE", f"nmf{tag}")
    monkeypatch.setenv("NOMADMESH_CNI_SUBNET", f"10.{100 + int(tag[:2], 16) % 50}.{int(tag[2:], 16)}.0/24")
    monkeypatch.setenv("NOMADMESH_NETNS_PREFIX", prefix)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    agent = agent_factory()
    target = target_from_env({}, nomad_addr=agent.nomad_addr, consul_addr=agent.consul_addr)
    nomad = nomad_client(target)
    try:
        for job in sample_jobs(tmp_path).values():
            nomad.jobs.register_job(job)
        for name in (*NAMES, "ingress"):
            wait_until(lambda n=name: (d := nomad.job.get_deployment(n)) and d["Status"] == "successful", 60,
                       step=0.2, what=f"{name} deployment successful")
        # Order is called from the host through the sample ingress gateway's listener.
        (stub,) = [a for a in nomad.job.get_allocations("ingress") if a["DesiredStatus"] == "run"]
        ports = nomad.allocation.get_allocation(stub["ID"])["AllocatedResources"]["Shared"]["Ports"]
        port = int(next(p["Value"] for p in ports if p["Label"] == "listener_8080"))
        wait_until(lambda: chain(port), 20, what="order -> invoice -> tax")
        yield {"agent": agent, "nomad": nomad, "consul": consul_client(target), "prefix": prefix, "port": port}
    finally:
        agent.stop()
        assert wait_until(lambda: not pids_with("envoy", str(agent.alloc_dir)), 15, what="envoys gone")
        assert netns_list(prefix) == []


def running_allocs(nomad: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for name in NAMES:
        (stub,) = [a for a in nomad.job.get_allocations(name) if a["DesiredStatus"] == "run"]
        out[name] = nomad.allocation.get_allocation(stub["ID"])
    return out


def test_agent_sigkilled_under_traffic_loses_nothing(deployed_mesh: dict[str, Any]) -> None:
    agent, nomad = deployed_mesh["agent"], deployed_mesh["nomad"]
    cons, port = deployed_mesh["consul"], deployed_mesh["port"]
    consul = agent.consul_addr
    # State worth keeping: an intention, a KV pair, a second job version (order's count stays 1).
    assert cons.config.set("service-intentions", "tax", {
        "Kind": "service-intentions", "Name": "tax", "Sources": [{"Name": "invoice", "Action": "allow"}]})
    assert cons.kv.put("faults/agent-kill", "still here")
    job = nomad.job.get_job("tax")
    job["Meta"] = {**(job.get("Meta") or {}), "bump": "1"}
    nomad.jobs.register_job({"Job": job})
    wait_until(lambda: nomad.job.get_job("tax")["Version"] == 1
               and (d := nomad.job.get_deployment("tax")) and d["JobVersion"] == 1 and d["Status"] == "successful",
               30, step=0.2, what="tax version 1 deployed")
    wait_until(lambda: chain(port), 10, what="chain after the in-place update")
    root_id = requests.get(f"{consul}/v1/connect/ca/roots", timeout=5).json()["ActiveRootID"]
    before = running_allocs(nomad)
    versions = {n: nomad.job.get_job(n)["Version"] for n in NAMES}
    envoys = sorted(pids_with("envoy", str(agent.alloc_dir)))
    assert len(envoys) == 4  # three sidecars and the ingress gateway the calls come through

    # Steady traffic, 100 calls over ~3 s; the agent is SIGKILLed after the 20th and stays down.
    failures, served_while_down = [], 0
    for i in range(100):
        if i == 20:
            assert agent.stop(kill=True) == -signal.SIGKILL
        try:
            ok = chain(port)
        except requests.RequestException:
            ok = False
        if not ok:
            failures.append(i)
        elif i >= 20:
            served_while_down += 1
        time.sleep(0.03)  # paced traffic: the calls must span the time the agent is down
    assert failures == [], f"calls failed while the agent was down: {failures}"
    assert served_while_down == 80
    assert sorted(pids_with("envoy", str(agent.alloc_dir))) == envoys  # the sidecars never restarted

    agent.start()
    # Everything is still there, and the running allocations were adopted, not replaced.
    assert requests.get(f"{consul}/v1/connect/ca/roots", timeout=5).json()["ActiveRootID"] == root_id
    assert {n: nomad.job.get_job(n)["Version"] for n in NAMES} == versions
    assert [v["Version"] for v in nomad.job.get_versions("tax")["Versions"]] == [1, 0]
    entry = cons.config.get("service-intentions", "tax")
    assert [(s["Name"], s["Action"]) for s in entry["Sources"]] == [("invoice", "allow")]
    assert cons.kv.get("faults/agent-kill")[1]["Value"] == b"still here"
    time.sleep(2)  # a few scheduler passes: it must not replace what runs
    after = running_allocs(nomad)
    assert {n: a["ID"] for n, a in after.items()} == {n: a["ID"] for n, a in before.items()}
    assert all(a["ClientStatus"] == "running" for a in after.values())
    assert sorted(pids_with("envoy", str(agent.alloc_dir))) == envoys
    assert all(len(nomad.job.get_allocations(n)) == 1 for n in NAMES)  # nothing extra was placed
    assert chain(port)

    # The Envoys reconnected to the new agent's xDS server: a deny reaches them.
    assert cons.config.set("service-intentions", "tax", {
        "Kind": "service-intentions", "Name": "tax", "Sources": [{"Name": "invoice", "Action": "deny"}]})
    wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 502, 10, step=0.02,
               what="deny enforced after the restart")


def test_sidecar_killed_is_restarted_and_traffic_resumes(deployed_mesh: dict[str, Any]) -> None:
    nomad, port, prefix = deployed_mesh["nomad"], deployed_mesh["port"], deployed_mesh["prefix"]
    namespaces = netns_list(prefix)
    assert len(namespaces) == 4  # order, invoice, tax and the ingress gateway
    alloc = running_allocs(nomad)["invoice"]
    task = "connect-proxy-invoice"
    proxy_port = int(next(p["Value"] for p in alloc["AllocatedResources"]["Shared"]["Ports"]
                          if p["Label"] == task))
    (old,) = pids_with("envoy", alloc["ID"])  # its bootstrap path names the allocation
    os.kill(old, signal.SIGKILL)

    wait_until(lambda: not chain(port), 5, step=0.02, what="the call fails while invoice's sidecar is gone")
    restarted = wait_until(lambda: (a := nomad.allocation.get_allocation(alloc["ID"]))["TaskStates"][task]
                           ["Restarts"] == 1 and a["TaskStates"][task]["State"] == "running" and a, 20,
                           step=0.1, what="sidecar task restarted")
    assert restarted["ClientStatus"] == "running"
    assert "Restarting" in [e["Type"] for e in restarted["TaskStates"][task]["Events"]]
    wait_until(lambda: chain(port), 20, step=0.05, what="traffic through the restarted sidecar")

    # No leak: one Envoy for this allocation (a new one), one listener on its proxy port, same namespaces.
    new = pids_with("envoy", alloc["ID"])
    assert len(new) == 1 and new[0] != old
    ns = prefix + alloc["ID"][:8]
    listeners = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hltnp", f"sport = :{proxy_port}"],
                               capture_output=True, text=True, timeout=5).stdout
    assert listeners.count("LISTEN") >= 1 and f"pid={new[0]}," in listeners and f"pid={old}," not in listeners
    assert netns_list(prefix) == namespaces
    assert all(len(nomad.job.get_allocations(n)) == 1 for n in NAMES)
