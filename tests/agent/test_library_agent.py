"""The library against a real dev agent over HTTP: plan → apply → status → destroy from Python do
what `nomadmesh plan/deploy/status/destroy` do. The docker job is applied with detach=True, so
nothing needs to run (like tests/agent/test_deploy_submission.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

import nomadmesh
from nomadmesh.deploy.target import target_from_env
from support.agents import RunningAgent

DOCK = {"service": {"name": "libdock", "port": 8080}, "nomad": {"driver": "docker", "image": "nginx:1.27"}}


def services_folder(root: Path) -> Path:
    folder = root / "services" / "libdock"
    folder.mkdir(parents=True)
    (folder / "service.json").write_text(json.dumps(DOCK))
    return root / "services"


def test_plan_apply_status_destroy_from_python(module_agent: RunningAgent, tmp_path: Path) -> None:
    target = target_from_env({}, nomad_addr=module_agent.nomad_addr, consul_addr=module_agent.consul_addr)
    spec = nomadmesh.load(services_folder(tmp_path))

    first = nomadmesh.plan(spec, target=target)
    assert [(c.name, c.action) for c in first.changes] == [("libdock", "create")]
    report = nomadmesh.apply(first, target=target, detach=True)
    assert report.ok, report.to_dict()
    r = requests.get(f"{module_agent.nomad_addr}/v1/job/libdock/submission", params={"version": 0}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["Source"] == nomadmesh.render(spec)["libdock.nomad.hcl"]  # the rendered file is what runs

    assert [c.action for c in nomadmesh.plan(spec, target=target).changes] == ["noop"]
    assert [j.job for j in nomadmesh.status(target=target)] == ["libdock"]

    with pytest.raises(nomadmesh.DeployError, match="no job 'nosuch'"):
        nomadmesh.destroy(["libdock", "nosuch"], target=target)
    assert requests.get(f"{module_agent.nomad_addr}/v1/job/libdock", timeout=10).status_code == 200  # nothing stopped

    assert nomadmesh.destroy(["libdock"], target=target, purge=True) == ["libdock"]
    assert requests.get(f"{module_agent.nomad_addr}/v1/job/libdock", timeout=10).status_code == 404
    assert nomadmesh.status(target=target) == []


def test_without_a_target_the_library_reads_the_environment(module_agent: RunningAgent,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOMAD_ADDR", module_agent.nomad_addr)
    monkeypatch.setenv("CONSUL_HTTP_ADDR", module_agent.consul_addr)
    assert nomadmesh.status() == []
    monkeypatch.setenv("NOMAD_ADDR", "not a url at all://")
    with pytest.raises(nomadmesh.TargetError, match="NOMAD_ADDR"):
        nomadmesh.status()
