"""One path from `render` to the target: `deploy` submits exactly the job file `render` wrote, the
way `nomad job run` does (target's /v1/jobs/parse, then register with the Submission), and the agent
keeps that source per job version. A real agent over HTTP; the docker job is registered with
--detach, so nothing needs to run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests
from click.testing import CliRunner, Result

from nomadmesh.cli.main import cli
from support.agents import RunningAgent

DOCK = {"service": {"name": "subdock", "port": 8080}, "nomad": {"driver": "docker", "image": "nginx:1.27"}}


def write_service(root: Path, definition: dict[str, Any]) -> Path:
    folder = root / definition["service"]["name"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "service.json").write_text(json.dumps(definition))
    return root


def run(agent: RunningAgent, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--nomad-addr", agent.nomad_addr, "--consul-addr", agent.consul_addr],
                              catch_exceptions=False)


def submission(agent: RunningAgent, job: str, version: int) -> dict[str, Any]:
    r = requests.get(f"{agent.nomad_addr}/v1/job/{job}/submission", params={"version": version}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_deploy_submits_the_rendered_file_byte_for_byte_per_version(module_agent: RunningAgent,
                                                                    tmp_path: Path) -> None:
    services, jobs = write_service(tmp_path / "services", DOCK), tmp_path / "jobs"
    render = CliRunner().invoke(cli, ["render", "--services", str(services), "--out", str(jobs)])
    assert render.exit_code == 0, render.output
    r = run(module_agent, "deploy", "--services", str(services), "--detach")
    assert r.exit_code == 0, r.output
    first = (jobs / "subdock.nomad.hcl").read_bytes()
    v0 = submission(module_agent, "subdock", 0)
    assert v0["Source"].encode() == first and v0["Format"] == "hcl2"

    changed = json.loads(json.dumps(DOCK))
    changed["nomad"]["env"] = {"GREETING": "hi"}
    write_service(services, changed)
    assert CliRunner().invoke(cli, ["render", "--services", str(services), "--out", str(jobs)]).exit_code == 0
    r = run(module_agent, "deploy", "--services", str(services), "--detach")
    assert r.exit_code == 0, r.output
    second = (jobs / "subdock.nomad.hcl").read_bytes()
    assert second != first
    assert submission(module_agent, "subdock", 1)["Source"].encode() == second
    assert submission(module_agent, "subdock", 0)["Source"].encode() == first  # each version keeps its own

    r = run(module_agent, "plan", "--services", str(services), "--json")
    assert json.loads(r.output)["jobs"][0]["action"] == "noop", r.output  # unchanged file: nothing to do
    requests.delete(f"{module_agent.nomad_addr}/v1/job/subdock", params={"purge": "true"}, timeout=10)
