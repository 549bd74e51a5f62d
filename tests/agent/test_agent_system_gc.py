"""PUT /v1/system/gc and /v1/system/reconcile/summaries as Nomad answers them (forced GC: no
thresholds), driven with python-nomad's system client over real HTTP on an in-process agent that
runs real `sleep` tasks."""
from __future__ import annotations

import json
from typing import Any

import requests

from support.agents import InProcessAgent
from support.waiting import wait_until

HCL = """
job "%s" {
  group "g" {
    update {
      max_parallel     = 1
      min_healthy_time = "1s"
      healthy_deadline = "30s"
    }
    task "t" {
      driver = "raw_exec"
      config {
        command = "sleep"
        args    = ["300"]
      }
      meta { v = "%s" }
    }
  }
}
"""


def register(agent: InProcessAgent, name: str, version: str = "0") -> dict[str, Any]:
    job = agent.client.jobs.parse(HCL % (name, version), canonicalize=True)
    out: dict[str, Any] = agent.client.jobs.register_job({"Job": job})
    return out


def allocs(agent: InProcessAgent, job: str) -> list[dict[str, Any]]:
    return list(agent.client.job.get_allocations(job))


def running(agent: InProcessAgent, job: str, version: int = 0) -> list[dict[str, Any]]:
    return [a for a in allocs(agent, job) if a["ClientStatus"] == "running" and a["JobVersion"] == version]


def deployment_done(agent: InProcessAgent, job: str, version: int) -> bool:
    return any(d["JobVersion"] == version and d["Status"] == "successful"
               for d in agent.client.job.get_deployments(job))


def test_forced_gc_collects_dead_jobs_and_terminal_evals_allocs_and_deployments(agent: InProcessAgent) -> None:
    # "gone": stopped and dead. "kept": alive, with a replaced (terminal) allocation of version 0.
    register(agent, "gone")
    register(agent, "kept")
    old = wait_until(lambda: running(agent, "kept"), timeout=30, what="kept v0 running")[0]
    wait_until(lambda: running(agent, "gone"), timeout=30, what="gone running")
    wait_until(lambda: deployment_done(agent, "kept", 0), timeout=30, what="kept v0 deployed")
    register(agent, "kept", "1")
    wait_until(lambda: deployment_done(agent, "kept", 1), timeout=30, what="kept v1 deployed")
    wait_until(lambda: agent.client.allocation.get_allocation(old["ID"])["ClientStatus"] == "complete",
               timeout=30, what="kept v0 replaced")
    gone_allocs = allocs(agent, "gone")
    agent.client.job.deregister_job("gone")
    wait_until(lambda: agent.client.job.get_job("gone")["Status"] == "dead", timeout=30, what="gone dead")
    v0_deployment = next(d for d in agent.client.job.get_deployments("kept") if d["JobVersion"] == 0)
    kept_evals = {e["ID"] for e in agent.client.job.get_evaluations("kept")}
    current = running(agent, "kept", 1)
    before_gc = agent.ctx.state.index

    assert agent.client.system.initiate_garbage_collection() is True

    r = requests.get(f"{agent.addr}/v1/job/gone", timeout=10)
    assert (r.status_code, r.text.strip()) == (404, "job not found")
    assert not [e for e in agent.client.evaluations.get_evaluations() if e["JobID"] == "gone"]
    left = {a["ID"] for a in agent.client.allocations.get_allocations()}
    assert not left & {a["ID"] for a in gone_allocs}
    # The live job keeps its running allocation, the evaluation that placed it and its deployment;
    # its replaced allocation, that allocation's evaluation and the finished v0 deployment go.
    assert {a["ID"] for a in current} <= left and old["ID"] not in left
    assert current[0]["EvalID"] in {e["ID"] for e in agent.client.job.get_evaluations("kept")}
    assert old["EvalID"] in kept_evals and old["EvalID"] not in {e["ID"] for e in
                                                                 agent.client.job.get_evaluations("kept")}
    deployments = {d["ID"] for d in agent.client.job.get_deployments("kept")}
    assert v0_deployment["ID"] not in deployments and deployments
    assert agent.client.job.get_job("kept")["Status"] == "running"
    # Nothing running was touched.
    assert running(agent, "kept", 1) == current
    # The event stream tells watchers the job was deleted, as Nomad's job reap does.
    with requests.get(f"{agent.addr}/v1/event/stream", params={"topic": "Job:gone", "index": before_gc + 1},
                      stream=True, timeout=10) as r:
        batch = json.loads(next(r.iter_lines()))
    [event] = batch["Events"]
    assert event["Type"] == "JobBatchDeregistered" and event["Payload"]["Deleted"] is True


def test_reconcile_summaries_and_methods(agent: InProcessAgent) -> None:
    assert agent.client.system.reconcile_summaries() is True
    for path in ("/v1/system/gc", "/v1/system/reconcile/summaries"):
        r = requests.put(agent.addr + path, timeout=10)
        assert (r.status_code, r.text) == (200, "")
        r = requests.get(agent.addr + path, timeout=10)
        assert (r.status_code, r.text.strip()) == (405, "Invalid method")
