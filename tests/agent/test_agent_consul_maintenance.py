"""Service and node maintenance on the dev agent over real HTTP (py-consul): the critical
`_service_maintenance:<id>` / `_node_maintenance` checks Consul adds and removes, their effect on
health queries, and Consul's refusals (missing or bad `enable`, unknown service)."""
from __future__ import annotations

from collections.abc import Iterator

import consul
import pytest
import requests

from support.agents import RunningAgent


@pytest.fixture
def c(module_agent: RunningAgent) -> consul.Consul:
    return consul.Consul(host="127.0.0.1", port=module_agent.consul_port)


@pytest.fixture
def web(c: consul.Consul) -> Iterator[str]:
    c.agent.service.register("maint-web", service_id="maint-web-1", port=8080, tags=["v1"])
    try:
        yield "maint-web-1"
    finally:
        c.agent.service.deregister("maint-web-1")
        c.agent.maintenance(False)


def _put(agent: RunningAgent, path: str) -> requests.Response:
    return requests.put(f"http://127.0.0.1:{agent.consul_port}{path}", timeout=10)


def test_service_maintenance_adds_and_removes_a_critical_check(c: consul.Consul, web: str) -> None:
    assert len(c.health.service("maint-web", passing=True)[1]) == 1
    assert c.agent.service.maintenance(web, True, "upgrading the disk") is True
    check = c.agent.checks()[f"_service_maintenance:{web}"]
    assert check["Status"] == "critical" and check["Notes"] == "upgrading the disk"
    assert check["Name"] == "Service Maintenance Mode" and check["ServiceID"] == web
    assert check["ServiceName"] == "maint-web"
    assert c.health.service("maint-web", passing=True)[1] == []
    assert c.agent.service.maintenance(web, True, "another reason") is True  # already on: kept as it was
    assert c.agent.checks()[f"_service_maintenance:{web}"]["Notes"] == "upgrading the disk"
    assert c.agent.service.maintenance(web, False) is True
    assert f"_service_maintenance:{web}" not in c.agent.checks()
    assert len(c.health.service("maint-web", passing=True)[1]) == 1


def test_default_reason_and_deregistration_removes_the_check(c: consul.Consul) -> None:
    c.agent.service.register("maint-tmp", service_id="maint-tmp")
    c.agent.service.maintenance("maint-tmp", True)
    notes = c.agent.checks()["_service_maintenance:maint-tmp"]["Notes"]
    assert notes == ("Maintenance mode is enabled for this service, but no reason was provided. "
                     "This is a default message.")
    c.agent.service.register("maint-tmp", service_id="maint-tmp", tags=["again"])  # re-registration keeps it
    assert "_service_maintenance:maint-tmp" in c.agent.checks()
    c.agent.service.deregister("maint-tmp")
    assert "_service_maintenance:maint-tmp" not in c.agent.checks()


def test_node_maintenance_fails_every_service(c: consul.Consul, web: str) -> None:
    assert c.agent.maintenance(True, "kernel upgrade") is True
    check = c.agent.checks()["_node_maintenance"]
    assert (check["Status"], check["Notes"], check["ServiceID"]) == ("critical", "kernel upgrade", "")
    assert check["Name"] == "Node Maintenance Mode"
    assert c.health.service("maint-web", passing=True)[1] == []
    row = c.health.service("maint-web")[1][0]
    assert "_node_maintenance" in [ch["CheckID"] for ch in row["Checks"]]
    assert "_node_maintenance" in [ch["CheckID"] for ch in c.health.state("critical")[1]]
    assert c.agent.maintenance(False) is True
    assert "_node_maintenance" not in c.agent.checks()
    assert len(c.health.service("maint-web", passing=True)[1]) == 1


@pytest.mark.parametrize(("path", "status", "text"), [
    ("/v1/agent/maintenance", 400, "Missing value for enable"),
    ("/v1/agent/maintenance?enable=maybe", 400, 'Invalid value for enable: "maybe"'),
    ("/v1/agent/service/maintenance/maint-web-1", 400, "Missing value for enable"),
    ("/v1/agent/service/maintenance/maint-web-1?enable=yes", 400, 'Invalid value for enable: "yes"'),
    ("/v1/agent/service/maintenance/no-such?enable=true", 404, 'No service registered with ID "no-such"'),
    ("/v1/agent/service/maintenance/no-such?enable=false", 404, 'No service registered with ID "no-such"'),
])
def test_refusals(module_agent: RunningAgent, c: consul.Consul, web: str, path: str, status: int,
                  text: str) -> None:
    resp = _put(module_agent, path)
    assert resp.status_code == status and text in resp.text
    assert not [k for k in c.agent.checks() if "maintenance" in k]
