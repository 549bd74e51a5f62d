"""`deploy` verifies the declared upstream edges, and `status` exits non-zero when one fails: the
sample mesh on an agent with default policy deny (bridge mode, real Envoy sidecars)."""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from nomadmesh.cli.main import cli
from support.paths import SERVICES
from support.sample_mesh import GATEWAY, NAMES, NEEDS_BRIDGE, sample_mesh as _sample_mesh

pytestmark = [*NEEDS_BRIDGE, pytest.mark.envoy, pytest.mark.timeout(240)]


@pytest.fixture
def deny_mesh(agent_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    yield from _sample_mesh(lambda: agent_factory("--default-policy", "deny"), monkeypatch)


def test_deploy_fails_on_denied_edges_until_they_are_allowed(deny_mesh: dict[str, Any], tmp_path: Path) -> None:
    agent = deny_mesh["agent"]

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, [*args, "--nomad-addr", agent.nomad_addr, "--consul-addr", agent.consul_addr])

    # A project that manages its intentions elsewhere (no derived allows): healthy jobs, dead edges.
    no_derive = tmp_path / "elsewhere"
    shutil.copytree(SERVICES, no_derive / "services")
    (no_derive / "nomadmesh.json").write_text(json.dumps({"derive_intentions": False}))
    r = run("deploy", "--services", str(no_derive / "services"))
    assert r.exit_code == 1, r.output  # every job healthy, and yet nothing can call anything
    assert "Upstream edges:" in r.output
    assert "  FAIL invoice -> tax: denied by default policy (deny); tax has 1 healthy Connect instance" in r.output
    assert "  FAIL order -> invoice: denied by default policy (deny)" in r.output
    assert run("deploy", "--services", str(no_derive / "services"), "--no-verify").exit_code == 0

    # The samples derive an allow per declared upstream: the same jobs, and every edge works.
    r = run("deploy", "--services", str(SERVICES), "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["edges_ok"] and [(e["source"], e["destination"], e["verdict"]) for e in report["edges"]] == [
        ("invoice", "tax", "allow"), ("order", "invoice", "allow")]
    assert run("status").exit_code == 0

    # An operator's deny is an override: status fails on it, and deploy keeps it (and says the edge fails).
    assert run("intent", "deny", "invoice", "tax").exit_code == 0
    r = run("status")
    assert r.exit_code == 1
    assert "  FAIL invoice -> tax: denied by invoice => tax (deny)" in r.output
    (invoice,) = [j for j in json.loads(run("status", "--json").output) if j["job"] == "invoice"]
    assert invoice["edges"][0]["ok"] is False and invoice["problem"] is None
    r = run("deploy", "--services", str(SERVICES))
    assert r.exit_code == 1 and "  FAIL invoice -> tax: denied by invoice => tax (deny)" in r.output, r.output

    for name in (*NAMES, GATEWAY):
        deny_mesh["nomad"].job.deregister_job(name)
