"""POST/PUT /v1/job/:id/stable, /v1/job/:id/evaluate and /v1/validate/job as Nomad answers them, driven
with python-nomad where it covers the endpoint, over real HTTP on an in-process agent."""
from __future__ import annotations

from typing import Any

import nomad.api.exceptions as nx
import pytest
import requests

from support.agents import InProcessAgent
from support.nomad_jobs import DOCKER_HCL
from support.waiting import wait_until

HCL = DOCKER_HCL.replace("count = 2", "count = 0")
CRASHING_BATCH = """
job "crash" {
  type = "batch"
  group "g" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 1
      interval  = "24h"
      delay     = "1h"
      unlimited = false
    }
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "exit 3"]
      }
    }
  }
}
"""


def versions(agent: InProcessAgent, n: int) -> None:
    for v in range(n):
        text = HCL.replace('driver = "docker"', f'driver = "docker"\n      meta {{ v = "{v}" }}')
        job = agent.client.jobs.parse(text, canonicalize=True)
        agent.client.jobs.register_job({"Job": job})


def refusal(call: Any) -> tuple[int, str]:
    with pytest.raises(nx.BaseNomadException) as caught:
        call()
    resp = caught.value.nomad_resp
    return resp.status_code, resp.text.strip()


def stable_of(agent: InProcessAgent) -> dict[int, bool]:
    return {v["Version"]: v["Stable"] for v in agent.client.job.get_versions("cache")["Versions"]}


def test_stable_marks_a_version_and_the_current_job(agent: InProcessAgent) -> None:
    versions(agent, 2)
    out = agent.client.job.stable_job("cache", 0, True)
    assert out["Index"] > 0
    assert stable_of(agent) == {1: False, 0: True}
    assert agent.client.job.get_job("cache")["Stable"] is False  # v0 is not the current version
    r = requests.put(f"{agent.addr}/v1/job/cache/stable", json={"JobID": "cache", "JobVersion": 1, "Stable": True},
                     timeout=10)
    assert r.status_code == 200, r.text
    assert int(r.headers["X-Nomad-Index"]) == r.json()["Index"]
    assert agent.client.job.get_job("cache")["Stable"] is True and stable_of(agent) == {1: True, 0: True}
    agent.client.job.stable_job("cache", 1, False)
    assert agent.client.job.get_job("cache")["Stable"] is False and stable_of(agent) == {1: False, 0: True}


def test_stable_refusals(agent: InProcessAgent) -> None:
    versions(agent, 1)
    assert refusal(lambda: agent.client.job.stable_job("cache", 7, True)) == (
        500, 'job "cache" in namespace "default" at version 7 not found')
    assert refusal(lambda: agent.client.job.stable_job("nosuch", 0, True)) == (
        500, 'job "nosuch" in namespace "default" at version 0 not found')
    url = f"{agent.addr}/v1/job/cache/stable"
    for body, text in (({"JobVersion": 0}, "JobID must be specified"), ({"JobID": "other"}, "Job ID does not match")):
        r = requests.post(url, json=body, timeout=10)
        assert (r.status_code, r.text.strip()) == (400, text)
    assert requests.post(url, json={"JobID": "cache", "JobVersion": -1}, timeout=10).status_code == 400
    for action in ("stable", "evaluate", "dispatch"):
        r = requests.get(f"{agent.addr}/v1/job/cache/{action}", timeout=10)
        assert (r.status_code, r.text) == (405, "Invalid method")


def test_evaluate_makes_a_register_evaluation(agent: InProcessAgent) -> None:
    versions(agent, 1)
    job = agent.client.job.get_job("cache")
    out = agent.client.job.evaluate_job("cache")  # python-nomad sends no body: Nomad's old form
    assert out["EvalID"] and out["JobModifyIndex"] == job["ModifyIndex"] and out["EvalCreateIndex"] == out["Index"]
    ev = agent.client.evaluation.get_evaluation(out["EvalID"])
    assert ev["TriggeredBy"] == "job-register" and ev["JobID"] == "cache"
    wait_until(lambda: agent.client.evaluation.get_evaluation(out["EvalID"])["Status"] == "complete")
    r = requests.put(f"{agent.addr}/v1/job/cache/evaluate",
                     json={"JobID": "cache", "EvalOptions": {"ForceReschedule": False}}, timeout=10)
    assert r.status_code == 200 and int(r.headers["X-Nomad-Index"]) == r.json()["Index"]


def test_evaluate_refusals(agent: InProcessAgent) -> None:
    versions(agent, 1)
    assert refusal(lambda: agent.client.job.evaluate_job("nosuch")) == (500, "job not found")
    url = f"{agent.addr}/v1/job/cache/evaluate"
    for body, text in (({"EvalOptions": {}}, "Job ID must be specified"),
                       ({"JobID": "other"}, "JobID not same as job name")):
        r = requests.post(url, json=body, timeout=10)
        assert (r.status_code, r.text.strip()) == (400, text)


def test_evaluate_force_reschedule_replaces_a_failed_allocation_at_once(agent: InProcessAgent) -> None:
    agent.client.jobs.register_job({"Job": agent.client.jobs.parse(CRASHING_BATCH, canonicalize=True)})
    failed = wait_until(lambda: next((a for a in agent.client.job.get_allocations("crash")
                                      if a["ClientStatus"] == "failed"), None), 20)
    # the policy's 1 h delay holds the replacement back: only a follow-up evaluation waits
    follow = wait_until(lambda: agent.client.allocation.get_allocation(failed["ID"])["FollowupEvalID"])
    assert agent.client.evaluation.get_evaluation(follow)["Status"] == "pending"
    assert len(agent.client.job.get_allocations("crash")) == 1
    r = requests.post(f"{agent.addr}/v1/job/crash/evaluate",
                      json={"JobID": "crash", "EvalOptions": {"ForceReschedule": True}}, timeout=10)
    assert r.status_code == 200, r.text
    replacement = wait_until(lambda: next((a for a in agent.client.job.get_allocations("crash")
                                           if a["ID"] != failed["ID"]), None), 20)
    full = agent.client.allocation.get_allocation(replacement["ID"])
    assert full["PreviousAllocation"] == failed["ID"]
    assert full["RescheduleTracker"]["Events"][-1]["PrevAllocID"] == failed["ID"]
    old = agent.client.allocation.get_allocation(failed["ID"])
    assert old["DesiredTransition"]["ForceReschedule"] is True and old["NextAllocation"] == replacement["ID"]


def test_validate_reports_errors_in_nomads_shape(agent: InProcessAgent) -> None:
    job = agent.client.jobs.parse(HCL, canonicalize=True)
    ok = agent.client.validate.validate_job({"Job": job})
    assert ok.status_code == 200
    assert ok.json() == {"DriverConfigValidated": True, "ValidationErrors": None, "Error": "", "Warnings": ""}
    bad = dict(job, TaskGroups=[dict(job["TaskGroups"][0], Count=-1)])
    out = requests.put(f"{agent.addr}/v1/validate/job", json={"Job": bad}, timeout=10)
    assert out.status_code == 200, out.text
    body = out.json()
    assert body["ValidationErrors"] and any("count can't be negative" in e for e in body["ValidationErrors"])
    n = len(body["ValidationErrors"])
    assert body["Error"].startswith(f"{n} error{'s' if n != 1 else ''} occurred:\n\t* ")
    assert body["Error"].endswith("\n\n")
    assert agent.ctx.state.get("job", "default/cache") is None  # validation never registers
    r = requests.post(f"{agent.addr}/v1/validate/job", json={}, timeout=10)
    assert (r.status_code, r.text.strip()) == (400, "Job must be specified")
    assert requests.post(f"{agent.addr}/v1/validate/job", data="{", timeout=10).status_code == 400
