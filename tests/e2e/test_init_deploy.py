"""What `nomadmesh init` writes deploys as is: its example service comes up healthy with its sidecar."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_cli_deploy import agent, api, run  # noqa: F401  (module fixture)

from nomadmesh.cli.main import cli

pytestmark = [pytest.mark.root, pytest.mark.envoy]


def test_the_init_project_deploys_healthy(agent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert CliRunner().invoke(cli, ["init", str(tmp_path / "shop")]).exit_code == 0
    r = run(agent, "deploy", "--services", str(tmp_path / "shop" / "services"), "--timeout", "90")
    assert r.exit_code == 0, r.output
    try:
        status = {j["job"]: j for j in json.loads(run(agent, "status", "--json").output)}
        hello = status["hello"]
        assert hello["deployment"] == "successful", hello
        assert hello["allocations"][0]["sidecar"] == "running"
    finally:
        api(agent).deregister("hello", purge=True)
