"""Consul's agent endpoints the client suites exercise, on the dev agent over real HTTP with py-consul:
self's Member is its members entry, local services without Raft indexes and with Locality, a check
on a missing service (404), force-leave, monitor's log-level check, ACL endpoints without ACLs,
catalog gateway-services, and leave (on an agent of its own: it shuts the agent down)."""
from __future__ import annotations

from collections.abc import Callable

import consul
import pytest
import requests

from support.agents import RunningAgent
from support.waiting import wait_until


@pytest.fixture(scope="module")
def c(module_agent: RunningAgent) -> consul.Consul:
    return consul.Consul(host="127.0.0.1", port=module_agent.consul_port)


def test_self_member_is_the_members_entry(c: consul.Consul) -> None:
    assert c.agent.self()["Member"] in c.agent.members()


def test_local_services_have_no_raft_indexes_and_keep_locality(c: consul.Consul) -> None:
    locality = {"Region": "us-west-1", "Zone": "us-west-1a"}
    assert c.agent.service.register("ops-web", service_id="ops-web-1", locality=locality) is True
    try:
        svc = c.agent.services()["ops-web-1"]
        assert "CreateIndex" not in svc and "ModifyIndex" not in svc
        assert svc["Locality"] == locality
    finally:
        c.agent.service.deregister("ops-web-1")


def test_a_check_on_a_missing_service_is_404(module_agent: RunningAgent) -> None:
    resp = requests.put(f"{module_agent.consul_addr}/v1/agent/check/register", timeout=10,
                        json={"Name": "x", "TTL": "10s", "ServiceID": "ops-missing"})
    assert (resp.status_code, resp.text.strip()) == (404, 'ServiceID "ops-missing" does not exist')


def test_force_leave(module_agent: RunningAgent, c: consul.Consul) -> None:
    with pytest.raises(consul.ConsulException, match="No node found with name 'ops-nowhere'"):
        c.agent.force_leave("ops-nowhere", prune=True)
    node = c.agent.self()["Config"]["NodeName"]
    assert requests.put(f"{module_agent.consul_addr}/v1/agent/force-leave/{node}", timeout=10).status_code == 200


def test_monitor_streams_logs_and_refuses_an_unknown_level(module_agent: RunningAgent, c: consul.Consul) -> None:
    with pytest.raises(consul.exceptions.BadRequest, match="Unknown log level: not-a-level"):
        c.agent.monitor(loglevel="not-a-level")
    with requests.get(f"{module_agent.consul_addr}/v1/agent/monitor", params={"loglevel": "info"},
                      stream=True, timeout=10) as stream:
        assert stream.status_code == 200
        c.agent.service.register("ops-logged", service_id="ops-logged-1")  # the agent logs the registration
        try:
            lines = stream.iter_lines()
            assert wait_until(lambda: "ops-logged-1" in next(lines).decode(), 10)
        finally:
            c.agent.service.deregister("ops-logged-1")


def test_acl_endpoints_answer_acl_support_disabled(module_agent: RunningAgent, c: consul.Consul) -> None:
    with pytest.raises(consul.exceptions.ACLDisabled):
        c.agent.token.set_default("some-secret")
    for method, path in (("GET", "/v1/acl/tokens"), ("PUT", "/v1/acl/bootstrap"), ("GET", "/v1/acl/policies")):
        resp = requests.request(method, f"{module_agent.consul_addr}{path}", timeout=10)
        assert (resp.status_code, resp.text.strip()) == (401, "ACL support disabled")


def test_gateway_services_of_an_ingress_gateway(c: consul.Consul) -> None:
    assert c.catalog.gateway_services("ops-ingress") == []
    assert c.catalog.register("n-ops", "10.1.10.51", service={"service": "ops-gw-web", "port": 8080}) is True
    entry = {"Listeners": [{"Port": 8080, "Protocol": "tcp", "Services": [{"Name": "ops-gw-web"}]}]}
    assert c.config.set("ingress-gateway", "ops-ingress", entry) is True
    try:
        (svc,) = c.catalog.gateway_services("ops-ingress")
        assert (svc["Service"]["Name"], svc["GatewayKind"], svc["Port"]) == ("ops-gw-web", "ingress-gateway", 8080)
    finally:
        c.config.delete("ingress-gateway", "ops-ingress")
        c.catalog.deregister("n-ops")


def test_leave_shuts_the_agent_down(agent_factory: Callable[..., RunningAgent]) -> None:
    agent = agent_factory()
    assert consul.Consul(host="127.0.0.1", port=agent.consul_port).agent.leave() is True
    assert agent.proc is not None
    assert agent.proc.wait(timeout=60) == 0


def test_the_server_registers_the_consul_service_on_its_node(c: consul.Consul) -> None:
    """Every Consul server's leader registers `consul` (port 8300) in the catalog; the agent's own
    service list does not show it."""
    assert c.catalog.services()[1]["consul"] == []
    _, (row,) = c.catalog.service("consul")
    assert (row["ServiceID"], row["ServicePort"], row["Node"]) == ("consul", 8300, c.agent.self()["Config"]["NodeName"])
    _, (healthy,) = c.health.service("consul", passing=True)
    assert [chk["CheckID"] for chk in healthy["Checks"]] == ["serfHealth"]
    assert "consul" not in c.agent.services()
