"""Scheduling decisions without processes: reconcile, feasibility and one evaluation pass on real state."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from nomadmesh import jobspec
from nomadmesh.agent.nomad import evals, jobs, planner, spec
from nomadmesh.agent.nomad.node import node_document
from nomadmesh.agent.nomad.reconcile import reconcile
from nomadmesh.agent.state import State

HCL = """
job "web" {
  group "web" {
    count = 2
    network {
      port "http" {}
    }
    task "server" {
      driver = "raw_exec"
      config {
        command = "python3"
        args    = ["-m", "http.server", "${NOMAD_PORT_http}"]
      }
    }
  }
}
"""


def make_job(hcl: str = HCL, **changes: Any) -> dict[str, Any]:
    job = jobspec.canonicalize(jobspec.parse_hcl(hcl))
    for k, v in changes.items():
        job[k] = v
    return job


@pytest.fixture
def node() -> dict[str, Any]:
    return node_document("node-1", "n1", "dc1", "127.0.0.1:4646", None, 1)


def run_eval(state: State, node: dict[str, Any], eval_id: str) -> dict[str, Any]:
    evals.process(state, eval_id, node)
    return state.get("eval", eval_id).value


def live(state: State) -> list[dict[str, Any]]:
    return [a for a in state.values("alloc") if a["DesiredStatus"] == "run"]


def test_register_places_count_allocations_with_nomad_names(fresh_state: State, node) -> None:
    out = jobs.register(fresh_state, make_job())
    ev = run_eval(fresh_state, node, out["EvalID"])
    assert ev["Status"] == "complete" and not ev["FailedTGAllocs"]
    allocs = live(fresh_state)
    assert sorted(a["Name"] for a in allocs) == ["web.web[0]", "web.web[1]"]
    ports = [a["AllocatedResources"]["Shared"]["Ports"][0]["Value"] for a in allocs]
    assert all(20000 <= p <= 32000 for p in ports) and len(set(ports)) == 2
    dep = fresh_state.values("deployment")
    assert len(dep) == 1 and dep[0]["TaskGroups"]["web"]["DesiredTotal"] == 2
    assert all(a["DeploymentID"] == dep[0]["ID"] for a in allocs)


def test_enforce_index_semantics(fresh_state: State) -> None:
    with pytest.raises(jobs.EnforceIndexError, match="Enforcing job modify index 7: job does not exist"):
        jobs.register(fresh_state, make_job(), enforce_index=True, job_modify_index=7)
    first = jobs.register(fresh_state, make_job(), enforce_index=True, job_modify_index=0)
    with pytest.raises(jobs.EnforceIndexError, match="job already exists"):
        jobs.register(fresh_state, make_job(), enforce_index=True, job_modify_index=0)
    with pytest.raises(jobs.EnforceIndexError, match="conflicting job modify index"):
        jobs.register(fresh_state, make_job(), enforce_index=True, job_modify_index=first["JobModifyIndex"] + 100)
    assert fresh_state.get("job", "default/web").value["Version"] == 0  # failed attempts changed nothing


def test_unchanged_job_keeps_version_and_changed_job_bumps_it(fresh_state: State) -> None:
    a = jobs.register(fresh_state, make_job())
    b = jobs.register(fresh_state, make_job())
    assert b["JobModifyIndex"] == a["JobModifyIndex"]
    job = make_job()
    job["TaskGroups"][0]["Count"] = 3
    c = jobs.register(fresh_state, job)
    assert c["JobModifyIndex"] > a["JobModifyIndex"]
    assert [v["Version"] for v in fresh_state.values("job_version", "default/web/")] == [0, 1]


def test_count_change_is_in_place_and_config_change_is_destructive(fresh_state: State, node) -> None:
    run_eval(fresh_state, node, jobs.register(fresh_state, make_job())["EvalID"])
    job = make_job()
    job["TaskGroups"][0]["Count"] = 1
    job["Meta"] = {"k": "v"}
    run_eval(fresh_state, node, jobs.register(fresh_state, job)["EvalID"])
    allocs = live(fresh_state)
    assert [a["Name"] for a in allocs] == ["web.web[0]"] and allocs[0]["JobVersion"] == 1

    changed = copy.deepcopy(job)
    changed["TaskGroups"][0]["Tasks"][0]["Config"]["args"] = ["-m", "http.server", "9"]
    stored = jobs.register(fresh_state, changed)
    allocs_all = fresh_state.values("alloc")
    new_job = fresh_state.get("job", "default/web").value
    plan = planner.plan_job(new_job, allocs_all, allocs_all, node, spec.update_kind)
    assert plan.groups["web"].annotations()["DestructiveUpdate"] == 1
    run_eval(fresh_state, node, stored["EvalID"])
    allocs = live(fresh_state)
    assert len(allocs) == 1 and allocs[0]["JobVersion"] == 2 and allocs[0]["PreviousAllocation"]


def test_missing_driver_is_a_placement_failure_with_a_blocked_eval(fresh_state: State, node) -> None:
    job = make_job(HCL.replace('"raw_exec"', '"docker"'))
    ev = run_eval(fresh_state, node, jobs.register(fresh_state, job)["EvalID"])
    failed = ev["FailedTGAllocs"]["web"]
    assert failed["ConstraintFiltered"] == {"missing drivers": 1}
    assert failed["NodesEvaluated"] == 1 and failed["CoalescedFailures"] == 1
    blocked = fresh_state.get("eval", ev["BlockedEval"]).value
    assert blocked["Status"] == "blocked" and blocked["TriggeredBy"] == "queued-allocs"
    assert live(fresh_state) == []


def test_bridge_without_bridge_support_names_the_reason(fresh_state: State) -> None:
    node = node_document("node-1", "n1", "dc1", "127.0.0.1:4646", "bridge mode needs root", 1)
    job = make_job(HCL.replace('network {', 'network {\n      mode = "bridge"'))
    ev = run_eval(fresh_state, node, jobs.register(fresh_state, job)["EvalID"])
    (reason,) = ev["FailedTGAllocs"]["web"]["ConstraintFiltered"]
    assert "needs root" in reason


def test_stop_and_purge(fresh_state: State, node) -> None:
    run_eval(fresh_state, node, jobs.register(fresh_state, make_job())["EvalID"])
    out = jobs.deregister(fresh_state, "default", "web", purge=False)
    run_eval(fresh_state, node, out["EvalID"])
    job = fresh_state.get("job", "default/web").value
    assert job["Stop"] is True and job["Version"] == 1
    assert live(fresh_state) == []
    assert {a["DesiredDescription"] for a in fresh_state.values("alloc")} == {"alloc not needed as job is stopped"}
    assert fresh_state.values("deployment")[0]["Status"] == "cancelled"
    jobs.deregister(fresh_state, "default", "web", purge=True)
    assert fresh_state.get("job", "default/web") is None and fresh_state.values("job_version") == []
    with pytest.raises(jobs.JobNotFound):
        jobs.deregister(fresh_state, "default", "web", purge=True)


def test_destructive_updates_respect_max_parallel() -> None:
    job = make_job()
    allocs = []
    for i in range(2):
        allocs.append({"ID": f"a{i}", "Name": f"web.web[{i}]", "TaskGroup": "web", "DesiredStatus": "run",
                       "ClientStatus": "running", "JobVersion": 0, "CreateIndex": i, "Job": make_job()})
    job["Version"] = 1
    plans = reconcile(job, allocs, lambda old, new: "destructive", lambda _g: 1)
    assert len(plans["web"].destructive) == 1 and plans["web"].deferred == 1
