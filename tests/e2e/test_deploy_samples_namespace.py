"""The sample mesh deployed by `nomadmesh deploy` with nomadmesh.json's `namespace = "shop-prod"`
(created first, as on Nomad): the jobs run in that namespace, deploy waits for them there, every
edge verifies, and the gateway answers through the chain. `default` sees none of them."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests
from test_cli_deploy import REPO_SERVICES, agent, run  # noqa: F401  (module fixture)

pytestmark = [pytest.mark.root, pytest.mark.envoy]
NS = "shop-prod"


def test_the_samples_deploy_into_the_projects_namespace(agent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    shutil.copytree(REPO_SERVICES, tmp_path / "services")
    (tmp_path / "nomadmesh.json").write_text(json.dumps({"name": "shopns", "namespace": NS}))
    requests.post(f"{agent.nomad_addr}/v1/namespace", json={"Name": NS}, timeout=10).raise_for_status()
    try:
        r = run(agent, "deploy", "--services", str(tmp_path / "services"), "--project",
                str(tmp_path / "nomadmesh.json"), "--timeout", "90")
        assert r.exit_code == 0, r.output
        jobs = requests.get(f"{agent.nomad_addr}/v1/jobs?namespace={NS}", timeout=10).json()
        assert sorted(j["ID"] for j in jobs) == ["ingress", "invoice", "order", "tax"]
        assert {j["Status"] for j in jobs} == {"running"}
        assert requests.get(f"{agent.nomad_addr}/v1/jobs", timeout=10).json() == []
        allocs = requests.get(f"{agent.nomad_addr}/v1/job/ingress/allocations?namespace={NS}", timeout=10).json()
        (alloc,) = [a for a in allocs if a["ClientStatus"] == "running"]
        full = requests.get(f"{agent.nomad_addr}/v1/allocation/{alloc['ID']}", timeout=10).json()
        ports = full["AllocatedResources"]["Shared"]["Ports"]
        (gateway,) = [p for p in ports if not p["Label"].startswith("connect-proxy")]
        body = requests.get(f"http://127.0.0.1:{gateway['Value']}/", timeout=10).text
        assert len([ln for ln in body.splitlines() if ln.strip()]) == 3, body
    finally:
        for name in ("ingress", "order", "invoice", "tax"):
            requests.delete(f"{agent.nomad_addr}/v1/job/{name}?namespace={NS}&purge=true", timeout=10)
