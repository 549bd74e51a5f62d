"""The sample mesh (tax ← invoice ← order, with Connect sidecars) deployed by `nomadmesh deploy`:
upstreams first, all healthy, and order's published port answers through the chain.

The agent serves Connect now, so this runs unconditionally."""
from __future__ import annotations

import json

import pytest
import requests

from test_cli_deploy import REPO_SERVICES, agent, api, run  # noqa: F401  (module fixture)

pytestmark = pytest.mark.root


def test_samples_deploy_in_dependency_order_and_answer(agent) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    roots = requests.get(f"{agent.consul_addr}/v1/connect/ca/roots", timeout=5)
    assert roots.status_code == 200, "the agent serves Connect"
    r = run(agent, "deploy", "--services", str(REPO_SERVICES), "--timeout", "90")
    assert r.exit_code == 0, r.output
    registered = [ln.split()[1] for ln in r.output.splitlines() if ln.startswith("Registering ")]
    assert registered == ["tax", "invoice", "order"]
    status = run(agent, "status", "--json")
    (order,) = [j for j in json.loads(status.output) if j["job"] == "order"]
    assert order["allocations"][0]["sidecar"] == "running"
    body = requests.get(f"http://{order['addresses'][0]}/", timeout=10).text
    assert len([ln for ln in body.splitlines() if ln.strip()]) == 3, body
    for name in ("order", "invoice", "tax"):
        api(agent).deregister(name, purge=True)
