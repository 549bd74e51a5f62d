"""Catalog registrations on the dev agent over real HTTP (py-consul): an external node and its
service (a database outside Nomad) with checks, TaggedAddresses and NodeMeta, seen by the catalog,
health and filter endpoints; deregistering a check, a service, a node; Consul's refusals."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import consul
import pytest
import requests

from nomadmesh.agent.connect.proxies import MeshView, endpoints
from nomadmesh.agent.consul.external import ExternalCatalog
from nomadmesh.agent.context import AgentConfig, AgentContext
from support.agents import RunningAgent


@pytest.fixture
def c(module_agent: RunningAgent) -> Iterator[consul.Consul]:
    client = consul.Consul(host="127.0.0.1", port=module_agent.consul_port)
    try:
        yield client
    finally:
        for node in ("ext-db-host", "ext-other", "ext-proxy-host"):
            client.catalog.deregister(node)


def _put(agent: RunningAgent, path: str, body: Any) -> requests.Response:
    return requests.put(f"http://127.0.0.1:{agent.consul_port}{path}", json=body, timeout=10)


def _register_db(agent: RunningAgent) -> None:
    resp = _put(agent, "/v1/catalog/register", {
        "Node": "ext-db-host", "Address": "10.20.0.5",
        "TaggedAddresses": {"lan": "10.20.0.5", "wan": "198.51.100.5"}, "NodeMeta": {"external-node": "true"},
        "Service": {"ID": "pg-1", "Service": "ext-pg", "Tags": ["primary"], "Port": 5432,
                    "Meta": {"version": "16"}},
        "Checks": [{"CheckID": "pg-alive", "Name": "Postgres alive", "Status": "passing", "ServiceID": "pg-1"},
                   {"CheckID": "host-up", "Name": "Host up", "Status": "passing"}],
    })
    assert resp.status_code == 200 and resp.json() is True


def test_external_service_in_catalog_and_health(module_agent: RunningAgent, c: consul.Consul) -> None:
    _register_db(module_agent)
    nodes = {n["Node"]: n for n in c.catalog.nodes()[1]}
    assert nodes["ext-db-host"]["Address"] == "10.20.0.5"
    assert nodes["ext-db-host"]["TaggedAddresses"] == {"lan": "10.20.0.5", "wan": "198.51.100.5"}
    assert nodes["ext-db-host"]["Meta"] == {"external-node": "true"}
    assert c.catalog.services()[1]["ext-pg"] == ["primary"]
    [row] = c.catalog.service("ext-pg")[1]
    assert (row["Node"], row["Address"], row["ServiceID"], row["ServicePort"]) == ("ext-db-host", "10.20.0.5",
                                                                                   "pg-1", 5432)
    assert row["ServiceMeta"] == {"version": "16"} and row["NodeMeta"] == {"external-node": "true"}
    [entry] = c.health.service("ext-pg", passing=True)[1]
    assert entry["Node"]["Node"] == "ext-db-host" and entry["Service"]["ID"] == "pg-1"
    assert sorted(ch["CheckID"] for ch in entry["Checks"]) == ["host-up", "pg-alive"]  # no serfHealth there
    assert [ch["CheckID"] for ch in c.health.checks("ext-pg")[1]] == ["pg-alive"]
    assert sorted(ch["CheckID"] for ch in c.health.node("ext-db-host")[1]) == ["host-up", "pg-alive"]
    _, node = c.catalog.node("ext-db-host")
    assert node["Node"]["Node"] == "ext-db-host" and list(node["Services"]) == ["pg-1"]
    assert c.catalog.service("ext-pg", filter_expr='NodeMeta["external-node"] == "true"')[1][0]["ServiceID"] == "pg-1"
    assert "pg-1" not in c.agent.services()  # not one of the agent's own services
    assert c.health.connect("ext-pg")[1] == []  # not Connect-capable: no Connect endpoints, as in Consul


def test_check_status_defaults_to_critical_and_fails_health(module_agent: RunningAgent, c: consul.Consul) -> None:
    assert c.catalog.register("ext-other", "10.20.0.9", service={"Service": "ext-cache", "Port": 6379},
                              check={"Name": "cache up", "ServiceID": "ext-cache"}) is True
    [chk] = c.health.checks("ext-cache")[1]
    assert (chk["CheckID"], chk["Status"]) == ("cache up", "critical")
    assert c.health.service("ext-cache", passing=True)[1] == []
    assert "cache up" in [ch["CheckID"] for ch in c.health.state("critical")[1]]


def test_deregister_check_service_node(module_agent: RunningAgent, c: consul.Consul) -> None:
    _register_db(module_agent)
    # another datacenter: Consul forwards the request there, and the agent knows no other
    with pytest.raises(consul.ConsulException, match="No path to datacenter"):
        c.catalog.deregister("ext-db-host", dc="dc2")
    assert "ext-db-host" in [n["Node"] for n in c.catalog.nodes()[1]]
    assert c.catalog.deregister("ext-db-host", check_id="host-up") is True
    assert [ch["CheckID"] for ch in c.health.node("ext-db-host")[1]] == ["pg-alive"]
    assert c.catalog.deregister("ext-db-host", service_id="pg-1") is True
    assert "ext-pg" not in c.catalog.services()[1] and c.health.node("ext-db-host")[1] == []
    assert "ext-db-host" in [n["Node"] for n in c.catalog.nodes()[1]]
    assert c.catalog.deregister("ext-db-host") is True
    assert "ext-db-host" not in [n["Node"] for n in c.catalog.nodes()[1]]
    assert c.catalog.node("ext-db-host")[1] is None


def test_blocking_catalog_query_wakes_on_register(module_agent: RunningAgent, c: consul.Consul) -> None:
    index, _ = c.catalog.service("ext-pg")
    _register_db(module_agent)
    new_index, rows = c.catalog.service("ext-pg", index=index, wait="5s")
    assert int(new_index) > int(index) and [r["ServiceID"] for r in rows] == ["pg-1"]


def test_connect_capable_external_proxy_is_a_connect_endpoint(module_agent: RunningAgent, c: consul.Consul) -> None:
    resp = _put(module_agent, "/v1/catalog/register", {
        "Node": "ext-proxy-host", "Address": "10.20.0.7",
        "Service": {"Kind": "connect-proxy", "ID": "ext-api-proxy", "Service": "ext-api-sidecar-proxy",
                    "Port": 21000, "Proxy": {"DestinationServiceName": "ext-api"}},
    })
    assert resp.status_code == 200, resp.text
    [row] = c.catalog.connect("ext-api")[1]
    assert (row["ServiceID"], row["Address"], row["ServicePort"]) == ("ext-api-proxy", "10.20.0.7", 21000)
    assert [e["Service"]["ID"] for e in c.health.connect("ext-api")[1]] == ["ext-api-proxy"]


@pytest.mark.parametrize(("path", "body", "status", "text"), [
    ("/v1/catalog/register", {"Address": "10.0.0.1"}, 500, "Must provide node"),
    ("/v1/catalog/register", {"Node": "ext-other"}, 500, "Must provide address if SkipNodeUpdate is not set"),
    ("/v1/catalog/register", {"Node": "ext-other", "Address": "10.0.0.1", "Service": {"ID": "x"}}, 500,
     "Must provide service name"),
    ("/v1/catalog/register", {"Node": "ext-other", "Address": "10.0.0.1", "ID": "not-a-uuid"}, 500,
     "Invalid node ID"),
    ("/v1/catalog/register", {"Node": "ext-other", "Address": "10.0.0.1",
                              "Check": {"CheckID": "c", "ServiceID": "missing"}}, 500, "Missing service registration"),
    ("/v1/catalog/register", {"Node": "ext-other", "Address": "10.0.0.1",
                              "Check": {"CheckID": "c", "Node": "elsewhere"}}, 500,
     "Check node 'elsewhere' does not match node 'ext-other'"),
    ("/v1/catalog/register", {"Node": "ext-other", "Address": "10.0.0.1",
                              "Service": {"Service": "p", "Kind": "connect-proxy", "Port": 1}}, 500,
     "Proxy.DestinationServiceName must be non-empty"),
    ("/v1/catalog/register", [1], 400, "Request decode failed"),
    ("/v1/catalog/deregister", {"ServiceID": "x"}, 500, "Must provide node"),
])
def test_refusals_leave_nothing(module_agent: RunningAgent, c: consul.Consul, path: str, body: Any, status: int,
                                text: str) -> None:
    resp = _put(module_agent, path, body)
    assert resp.status_code == status and text in resp.text, resp.text
    assert "ext-other" not in [n["Node"] for n in c.catalog.nodes()[1]]


def test_registered_proxies_are_upstream_endpoints_when_healthy(tmp_path: Path) -> None:
    """What the xDS snapshots are built from: a healthy registered proxy for `ext-api` is an endpoint
    (at its node's address when it has none), an unhealthy one or a plain service is not."""
    ctx = AgentContext.open(AgentConfig(data_dir=tmp_path, node_name="agent-node"))
    try:
        ext = ExternalCatalog(ctx)
        proxy = {"Kind": "connect-proxy", "Service": "ext-api-sidecar-proxy", "Port": 21000,
                 "Proxy": {"DestinationServiceName": "ext-api"}}
        ext.register({"Node": "h1", "Address": "10.0.0.1", "Service": dict(proxy, ID="p1"),
                      "Check": {"CheckID": "p1-up", "ServiceID": "p1", "Status": "passing"}})
        ext.register({"Node": "h2", "Address": "10.0.0.2", "Service": dict(proxy, ID="p2"),
                      "Check": {"CheckID": "h2-down", "Status": "critical"}})  # a failing node check
        ext.register({"Node": "h3", "Address": "10.0.0.3", "Service": {"ID": "api", "Service": "ext-api", "Port": 80}})
        view = MeshView(services=(), checks=(), entries={}, datacenter="dc1", trust_domain="t", roots_pem="",
                        default_allow=True, remote_proxies=ext.connect_proxies())
        assert endpoints(view, "ext-api") == (("10.0.0.1", 21000),)
        ext.register({"Node": "h2", "Address": "10.0.0.2", "Check": {"CheckID": "h2-down", "Status": "passing"}})
        view = MeshView(services=(), checks=(), entries={}, datacenter="dc1", trust_domain="t", roots_pem="",
                        default_allow=True, remote_proxies=ext.connect_proxies())
        assert endpoints(view, "ext-api") == (("10.0.0.1", 21000), ("10.0.0.2", 21000))
    finally:
        ctx.close()


def test_node_meta_query_parameter(module_agent: RunningAgent, c: consul.Consul) -> None:
    _register_db(module_agent)
    assert c.catalog.register("ext-other", "10.20.0.9", service={"Service": "ext-pg", "ID": "pg-2"}) is True
    base = f"http://127.0.0.1:{module_agent.consul_port}"
    nodes = requests.get(f"{base}/v1/catalog/nodes?node-meta=external-node:true", timeout=10).json()
    assert [n["Node"] for n in nodes] == ["ext-db-host"]
    rows = requests.get(f"{base}/v1/catalog/service/ext-pg?node-meta=external-node:true", timeout=10).json()
    assert [r["ServiceID"] for r in rows] == ["pg-1"]
    rows = requests.get(f"{base}/v1/health/service/ext-pg?node-meta=external-node:false", timeout=10).json()
    assert rows == []
    assert len(c.catalog.service("ext-pg")[1]) == 2
