"""plan/deploy against a real agent: drift made out of band shows field by field and deploy
restores it; orphans of a project are listed and pruned, another project's jobs never are.
Docker jobs registered with --detach: nothing needs to run (the agent has no docker here). An
unchanged docker job that cannot be placed fails deploy, so each deploy here changes the job it
keeps (`release`), as a real deploy does."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests
from click.testing import CliRunner, Result

from nomadmesh.cli.main import cli
from support.agents import RunningAgent


def define(root: Path, name: str, project: str | None = None, release: str = "1") -> Path:
    """services/<name>/service.json under `root` (and nomadmesh.json naming the project); the services dir."""
    folder = root / "services" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "service.json").write_text(json.dumps(
        {"service": {"name": name, "port": 8080},
         "nomad": {"driver": "docker", "image": "nginx:1.27", "env": {"RELEASE": release}}}))
    if project is not None:
        (root / "nomadmesh.json").write_text(json.dumps({"name": project}))
    return root / "services"


def run(agent: RunningAgent, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--nomad-addr", agent.nomad_addr, "--consul-addr", agent.consul_addr])


def live(agent: RunningAgent, job: str) -> dict[str, Any]:
    r = requests.get(f"{agent.nomad_addr}/v1/job/{job}", timeout=10)
    r.raise_for_status()
    return r.json()


def test_out_of_band_changes_show_as_drift_and_deploy_restores_them(module_agent: RunningAgent,
                                                                    tmp_path: Path) -> None:
    services = define(tmp_path, "drifty")
    assert run(module_agent, "deploy", "--services", str(services), "--detach").exit_code == 0
    assert run(module_agent, "plan", "--services", str(services)).exit_code == 0

    job = live(module_agent, "drifty")  # someone scales it and adds an env var in the UI
    job["TaskGroups"][0]["Count"] = 3
    job["TaskGroups"][0]["Tasks"][0]["Env"] = {**(job["TaskGroups"][0]["Tasks"][0].get("Env") or {}), "DEBUG": "1"}
    requests.post(f"{module_agent.nomad_addr}/v1/jobs", json={"Job": job}, timeout=10).raise_for_status()

    r = run(module_agent, "plan", "--services", str(services), "--json")
    assert r.exit_code == 1, r.output
    (change,) = json.loads(r.output)["jobs"]
    assert change["action"] == "update"
    assert change["reason"] == ('drift: changed outside nomadmesh: group "drifty" Count: "3" => "1"; '
                                'task "drifty" Env[DEBUG]: not in the definition (live "1")')
    text = run(module_agent, "plan", "--services", str(services)).output
    assert "~ drifty: update (drift: changed outside nomadmesh:" in text and "Count" in text

    assert run(module_agent, "deploy", "--services", str(services), "--detach").exit_code == 0
    restored = live(module_agent, "drifty")
    assert restored["TaskGroups"][0]["Count"] == 1 and "DEBUG" not in (restored["TaskGroups"][0]["Tasks"][0]["Env"]
                                                                        or {})
    assert run(module_agent, "plan", "--services", str(services)).exit_code == 0


def test_orphans_are_listed_and_pruned_and_two_projects_never_prune_each_other(module_agent: RunningAgent,
                                                                               tmp_path: Path) -> None:
    shop = define(tmp_path / "shop", "shop-web", "shop")
    define(tmp_path / "shop", "shop-old")
    blog = define(tmp_path / "blog", "blog-web", "blog")
    for services in (shop, blog):
        assert run(module_agent, "deploy", "--services", str(services), "--detach").exit_code == 0
    assert live(module_agent, "shop-old")["Meta"]["nomadmesh_project"] == "shop"

    (shop / "shop-old" / "service.json").unlink()
    (shop / "shop-old").rmdir()
    r = run(module_agent, "plan", "--services", str(shop))
    assert r.exit_code == 1
    assert ("- shop-old: orphan (project 'shop', no definition renders it; `deploy --prune` stops it)"
            in r.output.splitlines())
    assert json.loads(run(module_agent, "plan", "--services", str(shop), "--json").output)["orphans"] == ["shop-old"]
    r = run(module_agent, "plan", "--services", str(blog), "--json")
    assert r.exit_code == 0 and json.loads(r.output)["orphans"] == []  # shop's jobs are not blog's business

    define(tmp_path / "shop", "shop-web", "shop", release="2")
    r = run(module_agent, "deploy", "--services", str(shop), "--detach")
    assert r.exit_code == 0 and "Orphans of project 'shop' (no definition renders them): shop-old" in r.output
    assert not live(module_agent, "shop-old")["Stop"]  # listed, not touched, without --prune

    define(tmp_path / "shop", "shop-web", "shop", release="3")
    r = run(module_agent, "deploy", "--services", str(shop), "--detach", "--prune")
    assert r.exit_code == 0, r.output
    assert live(module_agent, "shop-old")["Stop"]
    assert not live(module_agent, "shop-web")["Stop"] and not live(module_agent, "blog-web")["Stop"]
    assert run(module_agent, "plan", "--services", str(shop)).exit_code == 0

    define(tmp_path / "blog", "blog-web", "blog", release="2")
    r = run(module_agent, "deploy", "--services", str(blog), "--detach", "--prune")
    assert r.exit_code == 0 and not live(module_agent, "shop-web")["Stop"]  # blog prunes nothing of shop's

    define(tmp_path / "blog", "blog-gone", "blog")  # deployed, then its definition removed: blog's orphan
    define(tmp_path / "blog", "blog-web", "blog", release="3")
    assert run(module_agent, "deploy", "--services", str(blog), "--detach").exit_code == 0
    (blog / "blog-gone" / "service.json").unlink()
    r = run(module_agent, "destroy", "--services", str(blog), "--yes")
    assert r.exit_code == 0, r.output
    assert live(module_agent, "blog-web")["Stop"] and live(module_agent, "blog-gone")["Stop"]
    assert not live(module_agent, "shop-web")["Stop"]  # destroying blog leaves shop running


def test_prune_needs_a_project_name_and_every_service(module_agent: RunningAgent, tmp_path: Path) -> None:
    unnamed = define(tmp_path / "a", "anon-web")
    r = run(module_agent, "deploy", "--services", str(unnamed), "--prune")
    assert r.exit_code == 2 and 'set "name" in nomadmesh.json' in r.output
    named = define(tmp_path / "b", "named-web", "named")
    r = run(module_agent, "deploy", "named-web", "--services", str(named), "--prune")
    assert r.exit_code == 2 and "--prune needs every service" in r.output
    assert requests.get(f"{module_agent.nomad_addr}/v1/job/anon-web", timeout=10).status_code == 404
