"""An allocation's DesiredTransition (alloc stop's Migrate, job eval's ForceReschedule), a paused
deployment and a parameterized parent, decided without state or processes (evals.decide)."""
from __future__ import annotations

from typing import Any

from nomadmesh import jobspec
from nomadmesh.agent.nomad import evals
from nomadmesh.agent.nomad.node import node_document
from nomadmesh.agent.nomad.structs import TRIGGER_REGISTER, allocation, deployment, evaluation

HCL = """
job "web" {
  type = "%(type)s"
  group "web" {
    count = 2
    update { max_parallel = 1 }
    task "server" {
      driver = "raw_exec"
      config { command = "true" }
    }
  }
}
"""
NOW = 1_800_000_000_000_000_000
NODE = node_document("node-1", "n1", "dc1", "127.0.0.1:4646", None, 1)


def job_of(kind: str = "service", **changes: Any) -> dict[str, Any]:
    job = jobspec.canonicalize(jobspec.parse_hcl(HCL % {"type": kind}))
    job.update({"Version": 0, "CreateIndex": 5, "ModifyIndex": 5, "JobModifyIndex": 5, **changes})
    return job


def alloc_of(job: dict[str, Any], i: int, **changes: Any) -> dict[str, Any]:
    a = allocation(job, "web", i, "e0", NODE, [], "host", "", 10)
    a.update({"ClientStatus": "running", **changes})
    return a


def decide(job: dict[str, Any], allocs: list[dict[str, Any]], deps: list[dict[str, Any]] = ()) -> evals.EvalDecision:
    ev = evaluation(job, TRIGGER_REGISTER, 40)
    return evals.decide(evals.EvalInputs(ev=ev, job=job, all_allocs=allocs, deployments=list(deps),
                                         evals={ev["ID"]: ev}, node=NODE, index=42, now=NOW))


def allocs_written(decision: evals.EvalDecision) -> list[dict[str, Any]]:
    return [doc for (k, _), doc in decision.writes.docs.items() if k == "alloc"]


def test_a_migrating_allocation_is_stopped_and_replaced_in_its_slot() -> None:
    job = job_of()
    moving = alloc_of(job, 0, DesiredTransition={"Migrate": True})
    decision = decide(job, [moving, alloc_of(job, 1)])
    written = {a["ID"]: a for a in allocs_written(decision)}
    assert written[moving["ID"]]["DesiredStatus"] == "stop"
    assert written[moving["ID"]]["DesiredDescription"] == "alloc is being migrated"
    (new,) = [a for a in written.values() if a["ID"] != moving["ID"]]
    assert new["Name"] == "web.web[0]" and new["PreviousAllocation"] == moving["ID"]
    assert written[moving["ID"]]["NextAllocation"] == new["ID"]
    assert decision.changes["web"]["Migrate"] == 1


def test_force_reschedule_replaces_a_failed_allocation_its_policy_would_hold_back() -> None:
    job = job_of()
    failed = alloc_of(job, 0, ClientStatus="failed", ModifyTime=NOW)  # the default delay is 30 s away
    assert not [a for a in allocs_written(decide(job, [failed, alloc_of(job, 1)])) if a["ID"] != failed["ID"]]
    forced = dict(failed, DesiredTransition={"ForceReschedule": True})
    (new,) = [a for a in allocs_written(decide(job, [forced, alloc_of(job, 1)])) if a["ID"] != failed["ID"]]
    assert new["PreviousAllocation"] == failed["ID"] and new["RescheduleTracker"]["Events"][-1]["PrevAllocID"]


def test_a_paused_deployment_places_and_replaces_nothing() -> None:
    old = job_of()
    job = job_of(Version=1, JobModifyIndex=20, Meta={"v": "1"},
                 TaskGroups=[dict(old["TaskGroups"][0], Count=3,
                                  Tasks=[dict(old["TaskGroups"][0]["Tasks"][0], Env={"V": "1"})])])
    dep = dict(deployment(job, 30, {"web": 3}), Status="paused")
    allocs = [alloc_of(old, 0), alloc_of(old, 1)]
    assert allocs_written(decide(job, allocs, [dep])) == []
    running = dict(dep, Status="running")
    assert len([a for a in allocs_written(decide(job, allocs, [running])) if a["DesiredStatus"] == "run"]) == 2


def test_a_parameterized_parent_is_never_placed() -> None:
    job = job_of("batch", ParameterizedJob={"Payload": "optional", "MetaRequired": None, "MetaOptional": None})
    assert allocs_written(decide(job, [])) == []
    child = dict(job, ID="web/dispatch-1-abcdef01", ParentID="web", Dispatched=True)
    assert len(allocs_written(decide(child, []))) == 2
