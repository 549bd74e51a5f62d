"""The Nomad side inside the real `nomadmesh agent --dev` process (running_agent fixture): jobs
placed, their services and checks in the agent's Consul catalog (read with py-consul), placement
failures. (Bridge allocations: tests/e2e/test_agent_nomad_agent_bridge.py.)"""
from __future__ import annotations

from typing import Any

import requests

from support.agents import clients
from support.net import free_port
from support.nomad_jobs import DOCKER_HCL, get_text
from support.sample_apps import sample_app_job
from support.waiting import wait_until


def test_service_checks_pass_in_the_catalog_and_leave_with_the_job(running_agent: Any) -> None:
    n, c = clients(running_agent)
    port = free_port()
    n.jobs.register_job({"Job": sample_app_job("tax", port, "host", "127.0.0.1", {"tax": port})})
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
    # Like Nomad, the agent deregisters a task's services before it kills the task, so an empty
    # catalog does not yet mean the process is gone: wait for the port to close.
    wait_until(lambda: _refuses_connections(f"http://127.0.0.1:{port}/"), 15)


def _refuses_connections(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.ConnectionError:
        return True
    return False


def test_docker_job_is_a_placement_failure_not_a_crash(running_agent: Any) -> None:
    n, _ = clients(running_agent)
    job = n.jobs.parse(DOCKER_HCL, canonicalize=True)
    out = n.jobs.register_job({"Job": job})
    ev = wait_until(lambda: (e := n.evaluation.get_evaluation(out["EvalID"]))["Status"] == "complete" and e)
    assert ev["FailedTGAllocs"]["cache"]["ConstraintFiltered"] == {"missing drivers": 1}
    assert requests.get(f"{running_agent.nomad_addr}/v1/agent/health").json()["server"]["ok"] is True
