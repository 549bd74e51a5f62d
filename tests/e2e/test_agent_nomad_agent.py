"""The Nomad side inside the real `nomadmesh agent --dev` process (running_agent fixture): jobs
placed, their services and checks in the agent's Consul catalog (read with py-consul), placement
failures, and bridge namespaces gone after the agent's clean stop."""
from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path
from typing import Any, Callable

import consul
import nomad
import pytest
import requests

from support.waiting import wait_until
from support.nomad_jobs import DOCKER_HCL, get_text
from test_agent_nomad_samples import sample_job
from support.net import free_port

def clients(agent: Any) -> tuple[nomad.Nomad, consul.Consul]:
    return (nomad.Nomad(host="127.0.0.1", port=agent.nomad_port, timeout=10),
            consul.Consul(host="127.0.0.1", port=agent.consul_port))

def test_service_checks_pass_in_the_catalog_and_leave_with_the_job(running_agent: Any) -> None:
    n, c = clients(running_agent)
    port = free_port()
    n.jobs.register_job({"Job": sample_job("tax", port, "host", "127.0.0.1", {"tax": port})})
    wait_until(lambda: (d := n.job.get_deployment("tax")) and d["Status"] == "successful", 30)
    _, entries = c.health.service("tax", passing=True)
    (entry,) = entries
    assert entry["Service"]["Port"] == port and entry["Service"]["Address"] == "127.0.0.1"
    assert entry["Service"]["Meta"]["external-source"] == "nomad"
    checks = [ch for ch in entry["Checks"] if ch["ServiceID"]]
    assert [ch["Status"] for ch in checks] == ["passing"] and "200 OK" in checks[0]["Output"]
    (alloc,) = n.job.get_allocations("tax")
    assert entry["Service"]["ID"] == f"_nomad-task-{alloc['ID']}-group-tax-tax-http"
    assert get_text(f"http://127.0.0.1:{port}/") .startswith('{"Service": "Tax"')

    n.job.deregister_job("tax", purge=True)
    wait_until(lambda: c.catalog.service("tax")[1] == [], 15)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/", timeout=2)

def test_docker_job_is_a_placement_failure_not_a_crash(running_agent: Any) -> None:
    n, _ = clients(running_agent)
    job = n.jobs.parse(DOCKER_HCL, canonicalize=True)
    out = n.jobs.register_job({"Job": job})
    ev = wait_until(lambda: (e := n.evaluation.get_evaluation(out["EvalID"]))["Status"] == "complete" and e)
    assert ev["FailedTGAllocs"]["cache"]["ConstraintFiltered"] == {"missing drivers": 1}
    assert requests.get(f"{running_agent.nomad_addr}/v1/agent/health").json()["server"]["ok"] is True

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
        n.jobs.register_job({"Job": sample_job("tax", port, "bridge", "", {"tax": port})})
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
