"""deploy/drift.py: drift read from Nomad's plan diff, orphans by project. Pure; diffs made by our
copy of Nomad's job diff (nomadmesh.jobspec.diff) between real rendered jobs."""
from __future__ import annotations

import copy

from nomadmesh.definitions.model import Project, Run, Service
from nomadmesh.definitions.project import parse_project, project_name
from nomadmesh.deploy.drift import drifted_fields, orphans, with_drift
from nomadmesh.deploy.plan import plan
from nomadmesh.jobspec import parse_hcl
from nomadmesh.jobspec.diff import diff
from nomadmesh.render import render_hcl
from nomadmesh.render.ownership import PROJECT_KEY

WEB = Service(name="web", port=8080, source="services/web/service.json", connect=False,
              run=Run(driver="docker", image="nginx:1.27"))
RENDERED = parse_hcl(render_hcl(WEB, Project(name="shop")))  # the Job, as the agent parses it


def live_copy() -> dict:
    live = copy.deepcopy(RENDERED)
    live.update({"JobModifyIndex": 10, "Version": 0, "Status": "running"})
    return live


def test_no_drift_when_the_live_job_is_the_rendered_one() -> None:
    assert drifted_fields(diff(live_copy(), RENDERED)) == []
    assert drifted_fields(None) == []


def test_a_scaled_count_and_an_added_env_var_are_listed_with_live_and_definition_values() -> None:
    live = live_copy()
    live["TaskGroups"][0]["Count"] = 3
    live["TaskGroups"][0]["Tasks"][0].setdefault("Env", {})["DEBUG"] = "1"
    fields = drifted_fields(diff(live, RENDERED))
    assert 'group "web" Count: "3" => "1"' in fields
    assert 'task "web" Env[DEBUG]: not in the definition (live "1")' in fields
    assert len(fields) == 2


def test_a_nomadmesh_upgrade_is_not_drift_but_a_missing_project_key_is() -> None:
    live = live_copy()
    live["Meta"] = {**live["Meta"], "nomadmesh_version": "0.0.1"}
    assert drifted_fields(diff(live, RENDERED)) == []
    del live["Meta"][PROJECT_KEY]
    assert drifted_fields(diff(live, RENDERED)) == [f'Meta[{PROJECT_KEY}]: missing (definition "shop")']


def test_with_drift_turns_only_drifted_noops_into_updates() -> None:
    live = live_copy()
    p = plan({"web": RENDERED}, {"web": live})
    assert p.get("web").action == "noop"
    live["TaskGroups"][0]["Count"] = 2
    drifted = with_drift(p, {"web": {"Diff": diff(live, RENDERED)}})
    assert drifted.get("web").action == "update" and drifted.has_changes
    assert drifted.get("web").reason == 'drift: changed outside nomadmesh: group "web" Count: "2" => "1"'
    assert with_drift(p, {"web": {"Diff": diff(live_copy(), RENDERED)}}).get("web").action == "noop"


def stub(name: str, project: str | None, managed: bool = True, stop: bool = False) -> dict:
    meta = {"nomadmesh_managed": "true"} if managed else {}
    if project is not None:
        meta[PROJECT_KEY] = project
    return {"ID": name, "Meta": meta, "Stop": stop}


def test_orphans_are_this_projects_running_jobs_that_nothing_renders() -> None:
    live = [stub("web", "shop"), stub("old", "shop"), stub("gone", "shop", stop=True), stub("blog", "blog"),
            stub("legacy", None), stub("theirs", "shop", managed=False), stub("pr", "shop.pr42")]
    assert orphans(live, ["web"], "shop") == ["old"]
    assert orphans(live, [], "blog") == ["blog"]
    assert orphans(live, ["web"], "shop.pr42") == ["pr"]


def test_project_names() -> None:
    assert project_name() == "default" and project_name("shop", "pr42") == "shop.pr42"
    project, problems = parse_project({"name": "shop"}, "nomadmesh.json")
    assert project.name == "shop" and not problems
    _, problems = parse_project({"name": "Shop Front"}, "nomadmesh.json")
    assert [str(p) for p in problems] and "name" in str(problems[0])


def test_destroy_selects_one_projects_jobs_orphans_included() -> None:
    from nomadmesh.deploy.destroy import project_jobs

    live = [stub("web", "shop"), stub("old", "shop"), stub("gone", "shop", stop=True), stub("blog", "blog"),
            stub("legacy", None), stub("stranger", None), stub("theirs", "shop", managed=False)]
    assert project_jobs(live, "shop", ["web", "legacy"]) == ["legacy", "old", "web"]
    assert project_jobs(live, "blog", ["web"]) == ["blog"]  # a rendered name of another project's job: not blog's
