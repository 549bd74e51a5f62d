"""An http ingress listener end to end: a gateway declared in the project (kind ingress-gateway),
rendered, registered on the agent, run as a real Envoy in its own namespace, routing by Host to
tax's sidecar over mTLS with the gateway's identity. (The tcp listener of the samples is covered by
test_mesh_e2e.)"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import requests

from nomadmesh.definitions import load_spec
from nomadmesh.render import render
from support.paths import REPO
from support.sample_mesh import NEEDS_BRIDGE, host_port
from support.waiting import wait_until

pytestmark = [*NEEDS_BRIDGE, pytest.mark.envoy, pytest.mark.timeout(150)]

EDGE = {
    "service": {"name": "edge", "kind": "ingress-gateway", "port": 8080},
    "ingress": {"listeners": [{"port": 8080, "protocol": "http",
                               "services": [{"name": "tax", "hosts": ["tax.example.com"]}]}]},
    "nomad": {"update": {"min_healthy_time": "1s", "healthy_deadline": "1m", "progress_deadline": "2m"}},
}


def get(port: int, host: str) -> requests.Response:
    return requests.get(f"http://127.0.0.1:{port}/", headers={"Host": host}, timeout=5)


def test_http_listener_routes_by_host_to_the_service(sample_mesh: dict[str, Any], tmp_path: Path) -> None:
    nomad, cons = sample_mesh["nomad"], sample_mesh["consul"]
    services = tmp_path / "services"
    shutil.copytree(REPO / "services", services)
    (services / "edge").mkdir()
    (services / "edge" / "service.json").write_text(json.dumps(EDGE))
    # Consul refuses an http listener in front of a tcp service: tax speaks http.
    assert cons.config.set("service-defaults", "tax", {"Kind": "service-defaults", "Name": "tax", "Protocol": "http"})
    jobs = render(load_spec(services), "json", ["tax", "edge"])
    for name in ("tax", "edge"):
        nomad.jobs.register_job(json.loads(jobs[f"{name}.nomad.json"]))
    for name in ("tax", "edge"):
        wait_until(lambda n=name: (d := nomad.job.get_deployment(n)) and d["Status"] == "successful", 60,
                   step=0.2, what=f"{name} deployment successful")
    port, _ = host_port(nomad, "edge", "listener_8080")

    ok = wait_until(lambda: (r := get(port, "tax.example.com")).status_code == 200 and [r], 20, what="tax via edge")
    assert json.loads(ok[0].text) == {"Service": "Tax", "Version": 1.0}
    assert get(port, "tax.example.com:8080").status_code == 200  # the listener's port may follow the host
    assert get(port, "other.example.com").status_code == 404  # no virtual host for it

    # The gateway is the source tax's (L7) RBAC sees.
    assert cons.config.set("service-intentions", "tax", {
        "Kind": "service-intentions", "Name": "tax", "Sources": [{"Name": "edge", "Action": "deny"}]})
    wait_until(lambda: get(port, "tax.example.com").status_code == 403, 2.0, step=0.02, what="edge -> tax denied")
    assert cons.config.delete("service-intentions", "tax")
    wait_until(lambda: get(port, "tax.example.com").status_code == 200, 2.0, step=0.02, what="edge -> tax restored")
    for name in ("edge", "tax"):
        nomad.job.deregister_job(name)
