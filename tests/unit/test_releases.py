"""The pure parts of releases and rollback: the project's name, what a release covers, its JSON, and
the rollback plan (what goes back, what cannot, in which words)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nomadmesh.definitions.project import parse_project, project_name
from nomadmesh.deploy.releases import Release, comparable, entry_keys, mesh_names, project_of, same_state
from nomadmesh.deploy.rollback import EntryStep, describe, ordered_steps, plan_lines, plan_rollback
from nomadmesh.errors import TargetError


def intentions(name: str, **sources: str) -> dict[str, object]:
    return {"Kind": "service-intentions", "Name": name,
            "Sources": [{"Name": s, "Action": a, "Type": "consul"} for s, a in sources.items()]}


def release(number: int, jobs: dict[str, int], **entries: dict[str, object] | None) -> Release:
    return Release(number, "2026-11-27T18:00:00Z", "me@here", "deploy", jobs,
                   {k.replace("__", "/").replace("_", "-"): v for k, v in entries.items()})


def test_project_name_is_the_files_name_else_default_and_an_env_is_a_project_of_its_own() -> None:
    assert project_name("shop") == "shop"
    assert project_name(None) == project_name("") == "default"  # never the folder: clones render alike
    assert project_name("shop", "pr7") == "shop.pr7"  # '.' is no name character: no clash with "shop-pr7"
    assert parse_project({"name": "shop"}, "nomadmesh.json")[1] == []
    (problem,) = parse_project({"name": "a b"}, "nomadmesh.json")[1]
    assert str(problem).startswith("nomadmesh.json: name: 'a b' is not a valid name")


def test_project_of_reads_only_the_project_file(tmp_path: Path) -> None:
    root = tmp_path / "shop-folder"
    (root / "services").mkdir(parents=True)
    assert project_of(root / "services", None) == "default"
    (root / "nomadmesh.json").write_text(json.dumps({"name": "shop", "datacenters": "not-a-list"}))
    assert project_of(root / "services", None) == "shop"  # an invalid field elsewhere does not matter
    assert project_of(root / "services", None, env="pr7") == "shop.pr7"
    (root / "nomadmesh.json").write_text("{broken")
    assert project_of(root / "services", None) == "default"


def test_a_job_covers_its_services_and_their_upstreams() -> None:
    job = {"TaskGroups": [{"Services": [
        {"Name": "web", "Connect": {"SidecarService": {"Proxy": {"Upstreams": [
            {"DestinationName": "api"}, {"DestinationName": "db"}]}}}},
        {"Name": "web-admin"}]}, {"Services": None}]}
    assert mesh_names(job) == {"web", "web-admin", "api", "db"}
    assert entry_keys(["api"]) == ["service-defaults/api", "service-intentions/api", "service-resolver/api",
                                   "service-router/api", "service-splitter/api"]


def test_release_json_round_trip_and_bad_records() -> None:
    r = release(3, {"web": 2}, service_intentions__web=intentions("web", api="allow"), service_defaults__web=None)
    assert Release.from_json(r.to_json(), "k") == r
    assert r.present_entries == ["service-intentions/web"]
    with pytest.raises(TargetError, match="k: not a nomadmesh release record"):
        Release.from_json('{"number": 1}', "k")
    assert comparable({"Kind": "x", "ModifyIndex": 9, "CreateIndex": 3, "Hash": 1}) == {"Kind": "x"}
    assert same_state(r, Release(4, "later", "other", "deploy", {"web": 2}, dict(r.entries)))


def test_rollback_plan_reverts_changed_jobs_and_restores_changed_entries() -> None:
    then = intentions("web", api="allow")
    target = release(1, {"web": 0, "api": 3}, service_intentions__web=then, service_defaults__web=None)
    live_entries = {"service-intentions/web": (intentions("web", api="deny", ops="allow"), 40),
                    "service-defaults/web": ({"Kind": "service-defaults", "Name": "web", "Protocol": "http"}, 41)}
    plan = plan_rollback(target, {"web": 2, "api": 3, "new": 0}, {"web": {0, 1, 2}}, live_entries,
                         ["web", "api", "new"])
    assert plan.problems == ()
    assert [(s.name, s.live_version, s.to_version) for s in plan.jobs] == [("web", 2, 0)]  # api already there
    assert [(s.key, s.action, s.modify_index) for s in plan.entries] == [
        ("service-defaults/web", "delete", 41), ("service-intentions/web", "restore", 40)]
    assert plan.left_alone == ("new",)
    assert plan_lines(plan) == [
        "Roll back to release 1 (2026-11-27T18:00:00Z, me@here):",
        "  job web: version 2 → revert to version 0",
        "  delete service-defaults/web (Protocol: 'http' → None)",
        "  restore service-intentions/web (api: deny → allow; -ops (allow))",
        "  job new: not in release 1, left as it is",
    ]


def test_rollback_plan_names_what_cannot_be_done() -> None:
    target = release(2, {"gone": 1, "old": 0})
    plan = plan_rollback(target, {"old": 9}, {"old": {4, 5, 6, 7, 8, 9}}, {})
    assert plan.problems == (
        "job 'gone' is gone from Nomad (purged since release 2): it has no versions left to revert to",
        "job 'old': Nomad no longer keeps version 0 (it keeps the last few; live is 9)",
    )


def test_nothing_to_do_when_the_target_already_matches() -> None:
    entry = intentions("web", api="allow")
    target = release(1, {"web": 4}, service_intentions__web=entry)
    plan = plan_rollback(target, {"web": 4}, {}, {"service-intentions/web": (entry, 7)})
    assert plan.empty and plan.problems == ()


def test_describe_an_entry_created_and_an_l7_source() -> None:
    l7 = {"Kind": "service-intentions", "Name": "api", "Sources": [
        {"Name": "web", "Type": "consul", "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/x"}}]}]}
    assert describe(EntryStep("service-intentions/api", None, l7, 0)) == (
        "create service-intentions/api (+web: L7 (1 permission))")


def test_rollback_order_keeps_every_write_acceptable_to_consul() -> None:
    l7 = {"Kind": "service-intentions", "Name": "api", "Sources": [
        {"Name": "web", "Type": "consul", "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/x"}}]}]}
    http = {"Kind": "service-defaults", "Name": "api", "Protocol": "http"}
    target = release(1, {"api": 0}, service_intentions__api=l7, service_defaults__api=http,
                     service_intentions__db=None, service_defaults__db=None,
                     service_intentions__web=intentions("web", ops="allow"))
    live = {"service-intentions/db": (intentions("db", api="allow"), 5),
            "service-defaults/db": ({"Kind": "service-defaults", "Name": "db", "Protocol": "http"}, 6),
            "service-intentions/web": (intentions("web", ops="deny"), 7)}
    plan = plan_rollback(target, {"api": 1}, {"api": {0, 1}}, live)
    order = [(what, getattr(step, "key", getattr(step, "name", ""))) for what, step in ordered_steps(plan)]
    assert order == [
        ("entry", "service-intentions/web"),   # no L7: may go first
        ("entry", "service-defaults/api"),     # the protocol L7 rules need...
        ("entry", "service-intentions/api"),   # ...before the L7 rules
        ("job", "api"),
        ("entry", "service-intentions/db"),    # deletions after the jobs, intentions first
        ("entry", "service-defaults/db"),
    ]


def test_rollback_writes_the_protocol_then_resolver_then_splitter_and_deletes_the_other_way() -> None:
    def entry(kind: str, name: str) -> dict[str, object]:
        fields = {"service-defaults": {"Protocol": "http"}, "service-resolver": {"Subsets": {"v1": {}}},
                  "service-splitter": {"Splits": [{"Weight": 100, "ServiceSubset": "v1"}]},
                  "service-router": {"Routes": [{"Destination": {"ServiceSubset": "v1"}}]}}[kind]
        return {"Kind": kind, "Name": name, **fields}

    restored = {f"service_{k}__api": entry(f"service-{k}", "api") for k in ("defaults", "resolver", "splitter")}
    gone = {f"service_{k}__web": None for k in ("defaults", "resolver", "splitter", "router")}
    live = {f"service-{k}/web": (entry(f"service-{k}", "web"), 3) for k in ("defaults", "resolver", "splitter",
                                                                             "router")}
    plan = plan_rollback(release(1, {}, **restored, **gone), {}, {}, live)
    assert [step.key for _, step in ordered_steps(plan)] == [
        "service-defaults/api", "service-resolver/api", "service-splitter/api",
        "service-router/web", "service-splitter/web", "service-resolver/web", "service-defaults/web"]
