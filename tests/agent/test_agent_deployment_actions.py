"""POST/PUT /v1/deployment/fail|pause|allocation-health/:id as Nomad answers them, driven with python-nomad
over real HTTP on an in-process agent whose tasks really run (health_check = "manual", so the operator's
marks decide, as `nomad deployment` users do)."""
from __future__ import annotations

from typing import Any

import nomad.api.exceptions as nx
import pytest
import requests

from support.agents import InProcessAgent
from support.nomad_jobs import VERSIONED_TASK
from support.waiting import wait_until

JOB = """
job "dep" {
  group "g" {
    count = %(count)d
    update {
      max_parallel     = 1
      health_check     = "manual"
      min_healthy_time = "0s"
      healthy_deadline = "5m"
      auto_revert      = %(revert)s
    }
""" + VERSIONED_TASK + """  }
}
"""


def register(agent: InProcessAgent, v: str, count: int = 1, revert: bool = True) -> None:
    text = JOB % {"count": count, "revert": str(revert).lower(), "v": v}
    agent.client.jobs.register_job({"Job": agent.client.jobs.parse(text, canonicalize=True)})


def deployment_of(agent: InProcessAgent, version: int) -> dict[str, Any]:
    return wait_until(lambda: next((d for d in agent.client.job.get_deployments("dep")
                                    if d["JobVersion"] == version), None), 20)


def running_allocs(agent: InProcessAgent, version: int, n: int) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]] | None:
        found = [a for a in agent.client.job.get_allocations("dep")
                 if a["JobVersion"] == version and a["ClientStatus"] == "running" and a["DesiredStatus"] == "run"]
        return found if len(found) >= n else None
    return wait_until(ready, 20)


def health(agent: InProcessAgent, dep_id: str, healthy: list[str] | None = None,
           unhealthy: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = agent.client.deployment.deployment_allocation_health(dep_id, healthy or [], unhealthy or [])
    return out


def stable_v0(agent: InProcessAgent, count: int = 1) -> dict[str, Any]:
    """Version 0 running, its deployment made successful by the operator's healthy marks."""
    register(agent, "0", count)
    dep = deployment_of(agent, 0)
    health(agent, dep["ID"], [a["ID"] for a in running_allocs(agent, 0, count)])
    wait_until(lambda: agent.client.deployment.get_deployment(dep["ID"])["Status"] == "successful", 20)
    wait_until(lambda: agent.client.job.get_job("dep")["Stable"])
    return dep


def refusal(call: Any) -> tuple[int, str]:
    with pytest.raises(nx.BaseNomadException) as caught:
        call()
    resp = caught.value.nomad_resp
    return resp.status_code, resp.text.strip()


def test_fail_rolls_back_to_the_latest_stable_version(agent: InProcessAgent) -> None:
    stable_v0(agent)
    register(agent, "1")
    dep = deployment_of(agent, 1)
    out = agent.client.deployment.fail_deployment(dep["ID"])
    assert out["RevertedJobVersion"] == 0 and out["EvalID"] and out["Index"] == out["DeploymentModifyIndex"]
    failed = agent.client.deployment.get_deployment(dep["ID"])
    assert failed["Status"] == "failed"
    assert failed["StatusDescription"] == "Deployment marked as failed - rolling back to job version 0"
    job = agent.client.job.get_job("dep")
    assert job["Version"] == 2 and job["TaskGroups"][0]["Tasks"][0]["Env"] == {"V": "0"}
    assert agent.client.evaluation.get_evaluation(out["EvalID"])["TriggeredBy"] == "deployment-watcher"
    assert refusal(lambda: agent.client.deployment.fail_deployment(dep["ID"])) == (
        500, "can't fail terminal deployment")
    assert refusal(lambda: agent.client.deployment.fail_deployment("nosuch")) == (500, "deployment not found")


def test_fail_without_auto_revert_only_fails(agent: InProcessAgent) -> None:
    register(agent, "0", revert=False)
    dep = deployment_of(agent, 0)
    r = requests.put(f"{agent.addr}/v1/deployment/fail/{dep['ID']}", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["RevertedJobVersion"] is None and int(r.headers["X-Nomad-Index"]) == r.json()["Index"]
    failed = agent.client.deployment.get_deployment(dep["ID"])
    assert (failed["Status"], failed["StatusDescription"]) == ("failed", "Deployment marked as failed")
    assert agent.client.job.get_job("dep")["Version"] == 0


def test_pause_holds_a_rolling_update_until_resumed(agent: InProcessAgent) -> None:
    stable_v0(agent, count=2)
    register(agent, "1", count=2)
    dep = deployment_of(agent, 1)
    first = running_allocs(agent, 1, 1)  # max_parallel 1: one replaced at a time
    out = agent.client.deployment.pause_deployment(dep["ID"], True)
    assert out["EvalID"] == "" and out["EvalCreateIndex"] == 0 and out["Index"] > 0
    paused = agent.client.deployment.get_deployment(dep["ID"])
    assert (paused["Status"], paused["StatusDescription"]) == ("paused", "Deployment is paused")
    health(agent, dep["ID"], [first[0]["ID"]])  # an active deployment takes health marks while paused
    ev = agent.client.job.evaluate_job("dep")["EvalID"]
    wait_until(lambda: agent.client.evaluation.get_evaluation(ev)["Status"] == "complete")
    assert len([a for a in agent.client.job.get_allocations("dep") if a["JobVersion"] == 1]) == 1

    resumed = agent.client.deployment.pause_deployment(dep["ID"], False)
    assert resumed["EvalID"] and resumed["EvalCreateIndex"] == resumed["Index"]
    assert agent.client.deployment.get_deployment(dep["ID"])["StatusDescription"] == "Deployment is running"
    both = running_allocs(agent, 1, 2)
    health(agent, dep["ID"], [a["ID"] for a in both])
    done = wait_until(lambda: (d := agent.client.deployment.get_deployment(dep["ID"]))["Status"] == "successful"
                      and d, 20)
    assert done["TaskGroups"]["g"]["HealthyAllocs"] == 2
    assert refusal(lambda: agent.client.deployment.pause_deployment(dep["ID"], True)) == (
        500, "can't pause terminal deployment")
    assert refusal(lambda: agent.client.deployment.pause_deployment(dep["ID"], False)) == (
        500, "can't resume terminal deployment")
    url = f"{agent.addr}/v1/deployment/pause/{dep['ID']}"
    for body, text in (({"Pause": True}, "DeploymentID must be specified"),
                       ({"DeploymentID": "other", "Pause": True}, "Deployment ID does not match")):
        r = requests.post(url, json=body, timeout=10)
        assert (r.status_code, r.text.strip()) == (400, text)


def test_unhealthy_mark_fails_and_rolls_back(agent: InProcessAgent) -> None:
    stable_v0(agent)
    register(agent, "1")
    dep = deployment_of(agent, 1)
    [new] = running_allocs(agent, 1, 1)
    out = health(agent, dep["ID"], unhealthy=[new["ID"]])
    assert out["RevertedJobVersion"] == 0 and out["EvalID"]
    failed = agent.client.deployment.get_deployment(dep["ID"])
    assert failed["Status"] == "failed"
    assert failed["StatusDescription"] == "Failed due to unhealthy allocations - rolling back to job version 0"
    assert failed["TaskGroups"]["g"]["UnhealthyAllocs"] == 1
    marked = agent.client.allocation.get_allocation(new["ID"])["DeploymentStatus"]
    assert marked["Healthy"] is False and marked["ModifyIndex"] > 0
    assert agent.client.job.get_job("dep")["Version"] == 2
    assert refusal(lambda: health(agent, dep["ID"], [new["ID"]])) == (
        500, "can't set health of allocations for a terminal deployment")


def test_allocation_health_refusals(agent: InProcessAgent) -> None:
    register(agent, "0")
    dep = deployment_of(agent, 0)
    assert refusal(lambda: health(agent, dep["ID"])) == (
        500, "must specify at least one healthy/unhealthy allocation ID")
    assert refusal(lambda: health(agent, dep["ID"], ["nosuch"])) == (500, 'unknown alloc "nosuch"')
    assert refusal(lambda: health(agent, "nosuch", ["x"])) == (500, "deployment not found")
    register(agent, "0b", revert=False)
    other = deployment_of(agent, 1)
    [old] = [a for a in agent.client.job.get_allocations("dep") if a["JobVersion"] == 0][:1]
    assert refusal(lambda: health(agent, other["ID"], [old["ID"]])) == (
        500, f'alloc "{old["ID"]}" is not part of deployment "{other["ID"]}"')
    url = f"{agent.addr}/v1/deployment/allocation-health/{dep['ID']}"
    r = requests.post(url, json={"DeploymentID": "other", "HealthyAllocationIDs": ["x"]}, timeout=10)
    assert (r.status_code, r.text.strip()) == (400, "Deployment ID does not match")


def test_error_text_is_exactly_nomads(agent: InProcessAgent) -> None:
    # Nomad writes the error message alone (no trailing newline); python-nomad's own suite compares
    # `err.nomad_resp.text == "can't resume terminal deployment"` exactly.
    register(agent, "0", revert=False)
    dep = deployment_of(agent, 0)
    agent.client.deployment.fail_deployment(dep["ID"])
    with pytest.raises(nx.BaseNomadException) as caught:
        agent.client.deployment.pause_deployment(dep["ID"], False)
    assert caught.value.nomad_resp.text == "can't resume terminal deployment"
    assert requests.get(f"{agent.addr}/v1/job/nosuch", timeout=10).text == "job not found"
