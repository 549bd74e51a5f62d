"""The sample mesh (tax ← invoice ← order, with Connect sidecars, and the ingress gateway in front
of order) deployed by `nomadmesh deploy`: upstreams first, all healthy, and the gateway's published
listener answers through the chain — order itself publishes nothing.

The agent serves Connect now, so this runs unconditionally."""
from __future__ import annotations

import json

import pytest
import requests
from test_cli_deploy import REPO_SERVICES, agent, api, run  # noqa: F401  (module fixture)

pytestmark = [pytest.mark.root, pytest.mark.envoy]


def test_samples_deploy_in_dependency_order_and_answer(agent) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    roots = requests.get(f"{agent.consul_addr}/v1/connect/ca/roots", timeout=5)
    assert roots.status_code == 200, "the agent serves Connect"
    r = run(agent, "deploy", "--services", str(REPO_SERVICES), "--timeout", "90")
    assert r.exit_code == 0, r.output
    registered = [ln.split()[1] for ln in r.output.splitlines() if ln.startswith("Registering ")]
    assert registered == ["tax", "invoice", "order", "ingress"]
    status = {j["job"]: j for j in json.loads(run(agent, "status", "--json").output)}
    assert status["order"]["allocations"][0]["sidecar"] == "running"
    assert status["order"]["addresses"] == []  # no host port reaches order's app
    (gateway,) = status["ingress"]["addresses"]
    body = requests.get(f"http://{gateway}/", timeout=10).text
    assert len([ln for ln in body.splitlines() if ln.strip()]) == 3, body
    # `nomadmesh up` prints this address as the one to call.
    from nomadmesh.cli.up import _entry
    from nomadmesh.deploy.jobs import load_jobs
    from nomadmesh.deploy.live import parsed_jobs
    from nomadmesh.deploy.status import collect_status
    rendered = load_jobs(REPO_SERVICES)
    jobs = parsed_jobs(api(agent), rendered)
    assert _entry(collect_status(api(agent)), rendered.order, jobs) == (
        "order through the ingress gateway", gateway)
    for name in ("ingress", "order", "invoice", "tax"):
        api(agent).deregister(name, purge=True)
