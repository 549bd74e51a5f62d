"""`?filter=` on the agent's Consul list endpoints over real HTTP (py-consul's filter_expr):
catalog, health and agent lists select rows as Consul does, and a bad expression or an unknown
selector is Consul's 400, even on a blocking query."""
from __future__ import annotations

from collections.abc import Iterator

import consul
import pytest
import requests

from support.agents import RunningAgent


@pytest.fixture
def c(module_agent: RunningAgent) -> Iterator[consul.Consul]:
    client = consul.Consul(host="127.0.0.1", port=module_agent.consul_port)
    client.agent.service.register("flt-web", service_id="flt-web-1", port=8080, tags=["v1", "prod"],
                                  meta={"env": "prod"})
    client.agent.service.register("flt-web", service_id="flt-web-2", port=8081, tags=["v2"],
                                  meta={"env": "staging"}, check=consul.Check.ttl("60s"))
    client.agent.service.register("flt-db", service_id="flt-db-1", port=5432)
    try:
        yield client
    finally:
        for sid in ("flt-web-1", "flt-web-2", "flt-db-1"):
            client.agent.service.deregister(sid)


def test_catalog_service_and_services(c: consul.Consul) -> None:
    _, rows = c.catalog.service("flt-web", filter_expr='ServiceMeta.env == "prod"')
    assert [r["ServiceID"] for r in rows] == ["flt-web-1"]
    _, rows = c.catalog.service("flt-web", filter_expr="v2 in ServiceTags and ServicePort == 8081")
    assert [r["ServiceID"] for r in rows] == ["flt-web-2"]
    _, services = c.catalog.services(filter_expr='ServiceName matches "^flt-" and ServiceTags is empty')
    assert services == {"flt-db": []}


def test_health_service_by_check_status(c: consul.Consul) -> None:
    _, rows = c.health.service("flt-web", filter_expr="critical in Checks.Status")
    assert [r["Service"]["ID"] for r in rows] == ["flt-web-2"]  # a TTL check starts critical
    _, rows = c.health.service("flt-web", filter_expr='Service.Meta.env != staging and Node.Node is not empty')
    assert [r["Service"]["ID"] for r in rows] == ["flt-web-1"]
    _, checks = c.health.state("any", filter_expr='ServiceName == "flt-web"')
    assert [ch["ServiceID"] for ch in checks] == ["flt-web-2"]


def test_agent_services_and_checks(c: consul.Consul) -> None:
    services = c.agent.services(filter_expr='Service == "flt-web" and not (Tags contains v2)')
    assert list(services) == ["flt-web-1"]
    checks = c.agent.checks(filter_expr="ServiceID == flt-web-2")
    assert list(checks) == ["service:flt-web-2"]


def test_catalog_nodes_and_node(c: consul.Consul) -> None:
    name = c.agent.self()["Config"]["NodeName"]
    assert [n["Node"] for n in c.catalog.nodes(filter_expr=f'Node == "{name}"')[1]] == [name]
    assert c.catalog.nodes(filter_expr='Meta.rack == "nowhere"')[1] == []
    _, node = c.catalog.node(name, filter_expr='Service == "flt-db"')
    assert list(node["Services"]) == ["flt-db-1"]


@pytest.mark.parametrize(("path", "text"), [
    ("/v1/catalog/service/flt-web?filter=Nope == 1", 'Selector "Nope" is not valid'),
    ("/v1/health/service/flt-web?filter=Checks.Nope == 1", 'Selector "Checks.Nope" is not valid'),
    ("/v1/agent/services?filter=Service =", "no match found, expected:"),
    ("/v1/agent/checks?filter=Name matches \"(\"", "error parsing regexp"),
    ("/v1/health/state/any?filter=(Status == passing", 'no match found, expected: ")"'),
    ("/v1/catalog/service/flt-web?index=999999&wait=60s&filter=Nope == 1", 'Selector "Nope" is not valid'),
])
def test_bad_filters_are_400(module_agent: RunningAgent, c: consul.Consul, path: str, text: str) -> None:
    resp = requests.get(f"http://127.0.0.1:{module_agent.consul_port}{path}", timeout=10)
    assert resp.status_code == 400, resp.text
    assert resp.text.startswith("Failed to create boolean expression evaluator: ") and text in resp.text


def test_health_ingress_and_peer(module_agent: RunningAgent, c: consul.Consul) -> None:
    """/v1/health/ingress/<svc>: the gateways whose ingress-gateway entry routes to it; `?peer=`
    (no peerings on the dev agent) selects nothing."""
    assert c.health.ingress("flt-db")[1] == []
    resp = requests.put(f"http://127.0.0.1:{module_agent.consul_port}/v1/agent/service/register",
                        json={"Name": "flt-edge", "ID": "flt-edge-1", "Kind": "ingress-gateway", "Port": 21500},
                        timeout=10)
    assert resp.status_code == 200, resp.text
    entry = {"Kind": "ingress-gateway", "Name": "flt-edge",
             "Listeners": [{"Port": 9191, "Protocol": "tcp", "Services": [{"Name": "flt-db"}]}]}
    resp = requests.put(f"http://127.0.0.1:{module_agent.consul_port}/v1/config", json=entry, timeout=10)
    assert resp.status_code == 200, resp.text
    try:
        assert [r["Service"]["ID"] for r in c.health.ingress("flt-db")[1]] == ["flt-edge-1"]
        assert c.health.ingress("flt-web")[1] == []
        assert c.health.ingress("flt-db", filter_expr="Node.Node != `` ")[1] != []
        assert c.health.service("flt-web", peer="non-existent-peer")[1] == []
    finally:
        c.agent.service.deregister("flt-edge-1")
        requests.delete(f"http://127.0.0.1:{module_agent.consul_port}/v1/config/ingress-gateway/flt-edge", timeout=10)
