"""The seed's three services (services/app.py: order -> invoice -> tax) as hand-written Nomad Job JSON
on an in-process agent, in host or bridge mode, without Connect: each reaches its upstream through the
seed's INV_SVC_URL / TAX_SVC_URL."""
from __future__ import annotations

import json
import sys
from typing import Any

from support.agents import InProcessAgent
from support.net import free_port
from support.nomad_jobs import get_text
from support.paths import SERVICES
from support.waiting import wait_until

APP = str(SERVICES / "app.py")
S = 1_000_000_000
UPSTREAM = {"order": ("INV_SVC_URL", "invoice"), "invoice": ("TAX_SVC_URL", "tax")}


def sample_app_job(name: str, port: int, mode: str, upstream_host: str, ports: dict[str, int]) -> dict[str, Any]:
    env = {"BIND_ADDR": "0.0.0.0" if mode == "bridge" else "127.0.0.1", "PORT": "${NOMAD_PORT_http}"}
    if name in UPSTREAM:
        var, dest = UPSTREAM[name]
        env[var] = f"http://{upstream_host}:{ports[dest]}"
    return {
        "ID": name, "Name": name, "Type": "service", "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": name, "Count": 1,
            "Networks": [{"Mode": mode, "ReservedPorts": [
                {"Label": "http", "Value": port, "To": {"host": 0, "bridge": 5000}[mode]}]}],
            "Services": [{"Name": name, "PortLabel": "http", "Tags": [name], "Checks": [
                {"Type": "http", "Path": "/health", "Interval": S, "Timeout": S}]}],
            "Update": {"MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": S // 2,
                       "HealthyDeadline": 30 * S},
            "Tasks": [{"Name": name, "Driver": "raw_exec", "Env": env,
                       "Config": {"command": sys.executable, "args": [APP, name]}}],
        }],
    }


def deploy_all(agent: InProcessAgent, mode: str, upstream_host: str) -> dict[str, int]:
    ports = {n: free_port() for n in ("order", "invoice", "tax")}
    for name, port in ports.items():
        agent.client.jobs.register_job({"Job": sample_app_job(name, port, mode, upstream_host, ports)})
    for name in ports:
        wait_until(lambda n=name: (d := agent.client.job.get_deployment(n)) and d["Status"] == "successful", 30)
    return ports


def expected_chain() -> list[dict[str, Any]]:
    return [{"Service": n, "Version": 1.0} for n in ("Order", "Invoice", "Tax")]


def answer(port: int) -> list[dict[str, Any]]:
    return [json.loads(line) for line in get_text(f"http://127.0.0.1:{port}/", 20).splitlines()]


def assert_catalog(agent: InProcessAgent, ports: dict[str, int]) -> None:
    """Each service is in the catalog at its host port with its check passing (Nomad's IDs)."""
    for name, port in ports.items():
        (entry,) = agent.catalog.health(name, passing_only=True)
        svc = entry["Service"]
        assert (svc["Address"], svc["Port"]) == ("127.0.0.1", port)
        assert svc["ID"].startswith("_nomad-task-") and svc["ID"].endswith(f"-group-{name}-{name}-http")
        assert {c["Status"] for c in entry["Checks"]} == {"passing"}
