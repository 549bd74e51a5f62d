"""One evaluation decided without state or processes: evals.decide(EvalInputs) -> the documents to write."""
from __future__ import annotations

import dataclasses
from typing import Any

from nomadmesh import jobspec
from nomadmesh.agent.nomad import evals
from nomadmesh.agent.nomad.node import node_document
from nomadmesh.agent.nomad.structs import TRIGGER_REGISTER, evaluation

HCL = """
job "web" {
  group "web" {
    count = 2
    network {
      port "http" {}
    }
    task "server" {
      driver = "raw_exec"
      config { command = "true" }
    }
  }
}
"""
INDEX = 42
NOW = 1_800_000_000_000_000_000


def stored_job(**changes: Any) -> dict[str, Any]:
    job = jobspec.canonicalize(jobspec.parse_hcl(HCL))
    job.update({"Version": 0, "CreateIndex": 5, "ModifyIndex": 5, "JobModifyIndex": 5, **changes})
    return job


def inputs(job: dict[str, Any], allocs: list[dict[str, Any]] = (), deployments: list[dict[str, Any]] = (),
           other_evals: list[dict[str, Any]] = ()) -> evals.EvalInputs:
    ev = evaluation(job, TRIGGER_REGISTER, 40)
    return evals.EvalInputs(
        ev=ev, job=job, all_allocs=list(allocs), deployments=list(deployments),
        evals={e["ID"]: e for e in [ev, *other_evals]},
        node=node_document("node-1", "n1", "dc1", "127.0.0.1:4646", None, 1), index=INDEX, now=NOW)


def written(decision: evals.EvalDecision, kind: str) -> list[dict[str, Any]]:
    return [doc for (k, _), doc in decision.writes.docs.items() if k == kind]


def test_a_new_job_places_its_count_under_one_deployment() -> None:
    inp = inputs(stored_job())
    decision = evals.decide(inp)
    allocs = written(decision, "alloc")
    assert sorted(a["Name"] for a in allocs) == ["web.web[0]", "web.web[1]"]
    assert all(a["DesiredStatus"] == "run" and a["CreateIndex"] == INDEX for a in allocs)
    (dep,) = written(decision, "deployment")
    assert dep["TaskGroups"]["web"]["DesiredTotal"] == 2 and all(a["DeploymentID"] == dep["ID"] for a in allocs)
    (ev,) = written(decision, "eval")
    assert ev["ID"] == inp.ev["ID"] and ev["Status"] == "complete" and ev["DeploymentID"] == dep["ID"]
    assert inp.ev["Status"] == "pending"  # the inputs are not modified


def test_stopping_a_job_stops_its_allocations_and_cancels_its_deployment() -> None:
    placed = evals.decide(inputs(stored_job()))
    allocs, (dep,) = written(placed, "alloc"), written(placed, "deployment")
    decision = evals.decide(inputs(stored_job(Stop=True, Version=1), allocs, [dep]))
    stopped = written(decision, "alloc")
    assert sorted(a["ID"] for a in stopped) == sorted(a["ID"] for a in allocs)
    assert all(a["DesiredStatus"] == "stop" and a["DesiredDescription"] == "alloc not needed as job is stopped"
               and a["ModifyIndex"] == INDEX for a in stopped)
    (cancelled,) = written(decision, "deployment")
    assert cancelled["ID"] == dep["ID"] and cancelled["Status"] == "cancelled"


def test_an_older_blocked_evaluation_is_superseded() -> None:
    job = stored_job()
    blocked = evaluation(job, TRIGGER_REGISTER, 30, Status="blocked")
    decision = evals.decide(inputs(job, other_evals=[blocked]))
    superseded = next(e for e in written(decision, "eval") if e["ID"] == blocked["ID"])
    assert superseded["Status"] == "canceled" and superseded["StatusDescription"] == "evaluation superseded"


def test_allocations_on_a_node_that_is_gone_are_lost_and_replaced_on_the_node_there_is() -> None:
    """Nomad's lost allocations (a nil tainted node): stopped as lost, and replaced with a link back
    when a node can take them; with no node at all, the placement fails (a blocked evaluation)."""
    job = stored_job()
    first = evals.decide(inputs(job))
    placed = [dict(a, NodeID="gone-node", ClientStatus="running") for a in written(first, "alloc")]
    inp = inputs(job, placed)
    decision = evals.decide(dataclasses.replace(inp, nodes=frozenset({"node-1"})))
    allocs = {a["ID"]: a for a in written(decision, "alloc")}
    lost = [allocs[a["ID"]] for a in placed]
    assert all((a["ClientStatus"], a["DesiredStatus"], a["DesiredDescription"]) ==
               ("lost", "stop", "alloc is lost since its node is down") for a in lost)
    assert all(not (a.get("DesiredTransition") or {}).get("Migrate") for a in lost)  # stored as they were
    replacements = [a for a in allocs.values() if a["DesiredStatus"] == "run"]
    assert sorted(r["PreviousAllocation"] for r in replacements) == sorted(a["ID"] for a in placed)
    assert {r["NodeID"] for r in replacements} == {"node-1"}
    assert all(a["NextAllocation"] in {r["ID"] for r in replacements} for a in lost)
    # no node at all: lost all the same, nothing placed, a blocked evaluation says why
    decision = evals.decide(dataclasses.replace(inp, nodes=frozenset()))
    assert {a["ClientStatus"] for a in written(decision, "alloc")} == {"lost"}
    ev, blocked = sorted(written(decision, "eval"), key=lambda e: e["Status"] != "complete")
    assert blocked["Status"] == "blocked" and ev["BlockedEval"] == blocked["ID"]
    assert ev["FailedTGAllocs"]["web"]["NodesEvaluated"] == 0
