"""nomadmesh.json's `namespace` end to end on the real agent: with the namespace created first, deploy
registers the jobs in it, and plan, status and a second deploy find them there (not in `default`);
without it, deploy fails with Nomad's own error. The docker job is registered with --detach."""
from __future__ import annotations

import json
from pathlib import Path

import requests
from click.testing import CliRunner, Result

import nomadmesh
from nomadmesh.cli.main import cli
from nomadmesh.deploy.target import target_from_env
from support.agents import RunningAgent

DOCK = {"service": {"name": "nsdock", "port": 8080}, "nomad": {"driver": "docker", "image": "nginx:1.27"}}


def project(root: Path) -> Path:
    folder = root / "services" / "nsdock"
    folder.mkdir(parents=True)
    (folder / "service.json").write_text(json.dumps(DOCK))
    (root / "nomadmesh.json").write_text(json.dumps({"name": "shop", "namespace": "shop-prod"}))
    return root


def run(agent: RunningAgent, root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--services", str(root / "services"), "--project",
                                    str(root / "nomadmesh.json"), "--nomad-addr", agent.nomad_addr,
                                    "--consul-addr", agent.consul_addr], catch_exceptions=False)


def test_a_projects_namespace_is_where_deploy_puts_and_finds_its_jobs(module_agent: RunningAgent,
                                                                      tmp_path: Path) -> None:
    root = project(tmp_path)
    refused = run(module_agent, root, "deploy", "--detach")
    assert refused.exit_code != 0 and 'job "nsdock" is in nonexistent namespace "shop-prod"' in refused.output

    requests.post(f"{module_agent.nomad_addr}/v1/namespace", json={"Name": "shop-prod"}, timeout=10).raise_for_status()
    try:
        r = run(module_agent, root, "deploy", "--detach")
        assert r.exit_code == 0, r.output
        job = requests.get(f"{module_agent.nomad_addr}/v1/job/nsdock?namespace=shop-prod", timeout=10).json()
        assert job["Namespace"] == "shop-prod"
        assert requests.get(f"{module_agent.nomad_addr}/v1/job/nsdock", timeout=10).status_code == 404
        plan = run(module_agent, root, "plan", "--json")
        assert [(j["job"], j["action"]) for j in json.loads(plan.output)["jobs"]] == [("nsdock", "noop")]
        again = run(module_agent, root, "deploy", "--detach")  # the docker job cannot run here; that is said
        assert "nsdock ... unchanged" in again.output, again.output
        assert requests.get(f"{module_agent.nomad_addr}/v1/job/nsdock?namespace=shop-prod",
                            timeout=10).json()["Version"] == 0  # found and unchanged, not registered anew
        # the library too: its plan reads the job in the project's namespace
        target = target_from_env({}, nomad_addr=module_agent.nomad_addr, consul_addr=module_agent.consul_addr)
        spec = nomadmesh.load(root / "services", root / "nomadmesh.json")
        assert [(c.name, c.action) for c in nomadmesh.plan(spec, target=target).changes] == [("nsdock", "noop")]
    finally:
        requests.delete(f"{module_agent.nomad_addr}/v1/job/nsdock?namespace=shop-prod&purge=true", timeout=10)
