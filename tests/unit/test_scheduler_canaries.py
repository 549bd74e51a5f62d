"""Canaries decided without state or processes: evals.decide places, keeps and stops them as Nomad's
reconciler does, and canaries.promote checks health as Nomad's state store does."""
from __future__ import annotations

from typing import Any

import pytest

from nomadmesh import jobspec
from nomadmesh.agent.nomad import canaries, evals
from nomadmesh.agent.nomad.node import node_document
from nomadmesh.agent.nomad.structs import TRIGGER_REGISTER, evaluation
from nomadmesh.jobspec.validate import validate

HCL = """
job "web" {
  group "web" {
    count = 2
    update {
      max_parallel = 1
      canary       = %(canary)d
    }
    task "server" {
      driver = "raw_exec"
      config { command = "true" }
      env { V = "%(v)s" }
    }
  }
}
"""
NOW = 1_800_000_000_000_000_000


def job(version: int, canary: int = 1) -> dict[str, Any]:
    doc = jobspec.canonicalize(jobspec.parse_hcl(HCL % {"canary": canary, "v": version}))
    doc.update({"Version": version, "CreateIndex": 5, "ModifyIndex": 5, "JobModifyIndex": 5})
    return doc


def decide(j: dict[str, Any], allocs: list[dict[str, Any]], deployments: list[dict[str, Any]],
           index: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(allocations written, deployments written) by one evaluation of `j`."""
    ev = evaluation(j, TRIGGER_REGISTER, index - 1)
    inp = evals.EvalInputs(ev=ev, job=j, all_allocs=allocs, deployments=deployments, evals={ev["ID"]: ev},
                           node=node_document("node-1", "n1", "dc1", "127.0.0.1:4646", None, 1), index=index, now=NOW)
    docs = evals.decide(inp).writes.docs
    return [d for (k, _), d in docs.items() if k == "alloc"], [d for (k, _), d in docs.items() if k == "deployment"]


def running(allocs: list[dict[str, Any]], healthy: bool = True) -> list[dict[str, Any]]:
    return [dict(a, ClientStatus="running",
                 DeploymentStatus=dict(a.get("DeploymentStatus") or {}, Healthy=healthy)) for a in allocs]


def merged(before: list[dict[str, Any]], written: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {a["ID"]: a for a in before}
    by_id.update({a["ID"]: a for a in written})
    return list(by_id.values())


def v0_stable() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    allocs, [dep] = decide(job(0), [], [], 10)
    return running(allocs), dict(dep, Status="successful")


def test_canaries_are_placed_beside_the_old_allocations_which_stay() -> None:
    old, dep0 = v0_stable()
    written, [dep] = decide(job(1), old, [dep0], 20)
    [canary] = written  # nothing else written: the old allocations are untouched
    assert canary["Name"] == "web.web[0]" and canary["JobVersion"] == 1
    assert canary["DeploymentStatus"]["Canary"] is True and canary["DeploymentID"] == dep["ID"]
    g = dep["TaskGroups"]["web"]
    assert (g["DesiredCanaries"], g["PlacedCanaries"], g["Promoted"]) == (1, [canary["ID"]], False)
    assert dep["StatusDescription"] == "Deployment is running but requires manual promotion"
    # Until promoted, another evaluation changes nothing.
    again, deps = decide(job(1), merged(old, running([canary])), [dep0, dep], 30)
    assert (again, deps) == ([], [])


def test_more_canaries_than_count_take_indexes_beyond_it() -> None:
    old, dep0 = v0_stable()
    written, _ = decide(job(1, canary=3), old, [dep0], 20)
    assert sorted(a["Name"] for a in written) == ["web.web[0]", "web.web[1]", "web.web[2]"]


def test_after_promotion_the_canary_keeps_its_slot_and_the_rest_rolls() -> None:
    old, dep0 = v0_stable()
    [canary], [dep] = decide(job(1), old, [dep0], 20)
    promoted, _ids = canaries.promote(dep, running([canary]), None, NOW)
    written, _ = decide(job(1), merged(old, running([canary])), [dep0, promoted], 30)
    by_name = {(a["Name"], a["DesiredStatus"], a["JobVersion"]) for a in written}
    # web[0]: the old one there stops (the canary holds the slot); web[1] is replaced (max_parallel 1).
    assert by_name == {("web.web[0]", "stop", 0), ("web.web[1]", "stop", 0), ("web.web[1]", "run", 1)}
    assert canary["ID"] not in {a["ID"] for a in written}


def test_a_failed_deployment_stops_its_canaries_and_keeps_the_old_version() -> None:
    old, dep0 = v0_stable()
    [canary], [dep] = decide(job(1), old, [dep0], 20)
    written, _ = decide(job(1), merged(old, running([canary])), [dep0, dict(dep, Status="failed")], 30)
    assert [(a["ID"], a["DesiredStatus"]) for a in written] == [(canary["ID"], "stop")]


def test_an_older_versions_unpromoted_canaries_stop() -> None:
    old, dep0 = v0_stable()
    [canary], [dep] = decide(job(1), old, [dep0], 20)
    written, _ = decide(job(2), merged(old, running([canary])), [dep0, dep], 30)
    assert (canary["ID"], "stop") in {(a["ID"], a["DesiredStatus"]) for a in written}


def test_promotion_needs_healthy_canaries() -> None:
    old, dep0 = v0_stable()
    [canary], [dep] = decide(job(1), old, [dep0], 20)
    with pytest.raises(canaries.PromotionRefused) as refused:
        canaries.promote(dep, running([canary], healthy=False), None, NOW)
    assert str(refused.value) == '1 error occurred:\n\t* Task group "web" has 0/1 healthy allocations\n\n'
    promoted, ids = canaries.promote(dep, running([canary]), ["web"], NOW)
    assert ids == [canary["ID"]] and promoted["TaskGroups"]["web"]["Promoted"] is True
    assert promoted["StatusDescription"] == "Deployment is running"
    untouched, none = canaries.promote(dep, running([canary]), ["other"], NOW)
    assert none == [] and untouched["TaskGroups"]["web"]["Promoted"] is False


def test_auto_promote_waits_for_every_canary_group() -> None:
    old, dep0 = v0_stable()
    [canary], [dep] = decide(job(1), old, [dep0], 20)
    auto = dict(dep, TaskGroups={"web": dict(dep["TaskGroups"]["web"], AutoPromote=True)})
    assert not canaries.auto_promote_ready(dep, running([canary]))
    assert not canaries.auto_promote_ready(auto, running([canary], healthy=False))
    assert canaries.auto_promote_ready(auto, running([canary]))


def test_register_validation_of_the_canary_fields() -> None:
    bad = job(0, canary=0)
    bad["TaskGroups"][0]["Update"].update(Canary=-1)
    assert any("Canary count can not be less than zero: -1 < 0" in e for e in validate(bad))
    bad["TaskGroups"][0]["Update"].update(Canary=0, AutoPromote=True)
    assert any("Auto Promote requires a Canary count greater than zero" in e for e in validate(bad))
    assert validate(job(0, canary=1)) == []
