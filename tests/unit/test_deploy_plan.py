"""Pure parts of deploy: plan decisions, dependency order, plan diff text, destroy selection, log pick."""
from __future__ import annotations

import pytest

from nomadmesh.deploy.destroy import select_jobs
from nomadmesh.deploy.difftext import format_plan, placement_reason
from nomadmesh.deploy.errors import DeployError
from nomadmesh.deploy.logs import choose
from nomadmesh.deploy.order import deploy_order
from nomadmesh.deploy.plan import plan
from nomadmesh.deploy.watch import awaits_promotion, failing_task


def job(name: str, h: str = "h1", managed: bool = True, **extra: object) -> dict:
    meta = {"nomadmesh_managed": "true", "nomadmesh_hash": h} if managed else {"owner": "ops"}
    return {"ID": name, "Meta": meta, **extra}


def test_plan_create_update_noop_conflict() -> None:
    rendered = {n: job(n, "new" if n == "b" else "h1") for n in ("a", "b", "c", "d", "e")}
    live = {"a": None, "b": job("b", JobModifyIndex=7, Version=2), "c": job("c", JobModifyIndex=9, Version=1),
            "d": job("d", managed=False, JobModifyIndex=3), "e": job("e", Stop=True, JobModifyIndex=11)}
    p = plan(rendered, live)
    assert [(c.name, c.action, c.modify_index) for c in p.changes] == [
        ("a", "create", 0), ("b", "update", 7), ("c", "noop", 9), ("d", "conflict", 3), ("e", "update", 11)]
    assert p.has_changes and [c.name for c in p.conflicts] == ["d"]
    assert "does not manage" in p.get("d").reason


def test_plan_without_changes() -> None:
    p = plan({"a": job("a")}, {"a": job("a", JobModifyIndex=4, Version=0)})
    assert not p.has_changes and p.get("a").live_version == 0


def test_order_upstreams_first_and_external_ignored() -> None:
    order, warnings = deploy_order({"order": ["invoice"], "invoice": ["tax", "external-db"], "tax": []})
    assert order == ("tax", "invoice", "order") and warnings == ()


def test_order_cycle_warns_and_is_stable() -> None:
    order, warnings = deploy_order({"b": ["a"], "a": ["b"], "c": ["a"]})
    assert order == ("a", "b", "c")
    assert warnings and "cycle among a, b, c" in warnings[0]
    assert deploy_order({"b": ["a"], "a": ["b"], "c": ["a"]}) == (order, warnings)


def test_format_plan_fields_placements_and_failures() -> None:
    answer = {
        "Diff": {"Type": "Edited", "ID": "tax", "Fields": [
            {"Type": "Edited", "Name": "Meta[nomadmesh_hash]", "Old": "a", "New": "b"}],
            "TaskGroups": [{"Type": "Edited", "Name": "tax", "Tasks": [
                {"Type": "Edited", "Name": "tax", "Annotations": ["forces create/destroy update"],
                 "Fields": [{"Type": "Added", "Name": "Env[X]", "New": "1"},
                            {"Type": "Deleted", "Name": "Env[Y]", "Old": "2"}]}]}]},
        "Annotations": {"DesiredTGUpdates": {"tax": {"DestructiveUpdate": 1}}},
        "FailedTGAllocs": {"tax": {"ConstraintFiltered": {"missing drivers": 1}}},
    }
    assert format_plan("tax", answer) == [
        '+/- Job: "tax"',
        '  ~ Meta[nomadmesh_hash]: "a" => "b"',
        '  +/- Task Group: "tax" (1 create/destroy update)',
        '    +/- Task: "tax" (forces create/destroy update)',
        '      + Env[X]: "1"',
        '      - Env[Y]: "2"',
        '  ! Task Group "tax" cannot be placed: missing drivers (1 node)',
    ]
    assert placement_reason({"NodesEvaluated": 0}) == "no nodes were eligible for evaluation"


def test_select_jobs_only_managed() -> None:
    live = [job("a"), job("b", managed=False), job("c", Stop=True)]
    assert select_jobs(live) == ["a"]
    assert select_jobs(live, ["a", "c"]) == ["a", "c"]
    with pytest.raises(DeployError, match="'b' is not managed by nomadmesh"):
        select_jobs(live, ["a", "b"])
    with pytest.raises(DeployError, match="no job 'zz'"):
        select_jobs(live, ["zz"])


def test_failing_task_prefers_failed_service_task() -> None:
    allocs = [
        {"ID": "ok", "TaskStates": {"web": {"Failed": False, "Restarts": 0}}},
        {"ID": "bad", "DeploymentStatus": {"Healthy": False},
         "TaskStates": {"web": {"Failed": True, "Restarts": 2}, "connect-proxy-web": {"Failed": True, "Restarts": 2}}},
    ]
    assert failing_task(allocs) == ("bad", "web")
    assert failing_task([]) is None


def test_logs_choose_newest_running_and_checks_task() -> None:
    allocs = [{"ID": "old", "ClientStatus": "complete", "CreateIndex": 9, "TaskStates": {"web": {}}},
              {"ID": "new", "ClientStatus": "running", "CreateIndex": 5, "TaskStates": {"web": {}}}]
    assert choose("web", allocs, None) == ("new", "web")
    with pytest.raises(DeployError, match="no task 'nope'; tasks: web"):
        choose("web", allocs, "nope")
    with pytest.raises(DeployError, match="no allocations"):
        choose("web", [], None)


def _group(**kw: object) -> dict[str, object]:
    return {"DesiredCanaries": 1, "PlacedCanaries": ["c1"], "HealthyAllocs": 1, "Promoted": False, **kw}


@pytest.mark.parametrize(("status", "groups", "done"), [
    ("running", {"web": _group()}, True),  # healthy canaries wait for a person
    ("running", {"web": _group(HealthyAllocs=0)}, False),  # not healthy yet
    ("running", {"web": _group(PlacedCanaries=[])}, False),  # not placed yet
    ("running", {"web": _group(AutoPromote=True)}, False),  # promotes itself: watched to the end
    ("running", {"web": _group(Promoted=True)}, False),  # promoted: the rest is rolling
    ("running", {"web": _group(), "db": {"DesiredCanaries": 0, "HealthyAllocs": 0}}, True),
    ("running", {"web": _group(), "db": _group(HealthyAllocs=0)}, False),  # every group's canaries
    ("running", {"web": {"DesiredCanaries": 0, "HealthyAllocs": 1}}, False),  # no canaries at all
    ("successful", {"web": _group()}, False),
])
def test_a_deployment_awaits_promotion_once_its_canaries_are_healthy(
        status: str, groups: dict[str, object], done: bool) -> None:
    assert awaits_promotion({"Status": status, "TaskGroups": groups}) is done
