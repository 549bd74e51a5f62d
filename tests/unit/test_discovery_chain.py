"""The discovery chain compiler (agent/consul/discovery_chain.py) against Consul's documented
behaviour (API docs for /v1/discovery-chain, the discovery-chain concepts page, compile.go's cases):
default chain, subsets and DefaultSubset, redirect, failover, splitter flattening, router catch-all,
and the graph errors with Consul's texts."""
from __future__ import annotations

from typing import Any

import pytest

from nomadmesh.agent.consul.discovery_chain import ChainError, canonical, compile_chain

TD = "11111111-2222-3333-4444-555555555555.consul"


def compile_with(service: str, *entries: dict[str, Any], dc: str = "dc1") -> dict[str, Any]:
    table = {f"{e['Kind']}/{e['Name']}": e for e in entries}
    return compile_chain(service, lambda kind, name: table.get(f"{kind}/{name}"), dc, TD).to_json()


HTTP_WEB = {"Kind": "service-defaults", "Name": "web", "Protocol": "http"}
SUBSETS = {"Kind": "service-resolver", "Name": "web", "Subsets": {
    "v1": {"Filter": "Service.Meta.version == 1"}, "v2": {"Filter": "Service.Meta.version == 2", "OnlyPassing": True}}}


def test_no_entries_is_the_default_chain_as_the_api_docs_show_it() -> None:
    assert compile_with("web") == {
        "ServiceName": "web", "Namespace": "default", "Partition": "default", "Datacenter": "dc1",
        "Default": True, "Protocol": "tcp", "StartNode": "resolver:web.default.default.dc1",
        "Nodes": {"resolver:web.default.default.dc1": {
            "Type": "resolver", "Name": "web.default.default.dc1",
            "Resolver": {"Default": True, "ConnectTimeout": "5s", "Target": "web.default.default.dc1"}}},
        "Targets": {"web.default.default.dc1": {
            "ID": "web.default.default.dc1", "Service": "web", "Namespace": "default", "Partition": "default",
            "Datacenter": "dc1", "MeshGateway": {}, "Subset": {}, "TransparentProxy": {}, "ConnectTimeout": "5s",
            "SNI": f"web.default.dc1.internal.{TD}", "Name": f"web.default.dc1.internal.{TD}"}},
    }


def test_splitter_over_subsets_names_targets_and_snis_like_consul() -> None:
    chain = compile_with("web", HTTP_WEB, SUBSETS, {"Kind": "service-splitter", "Name": "web", "Splits": [
        {"Weight": 90, "ServiceSubset": "v1"}, {"Weight": 10, "ServiceSubset": "v2"}]})
    assert chain["StartNode"] == "splitter:web.default.default" and "Default" not in chain
    splits = chain["Nodes"]["splitter:web.default.default"]["Splits"]
    assert [(s["Weight"], s["NextNode"]) for s in splits] == [
        (90, "resolver:v1.web.default.default.dc1"), (10, "resolver:v2.web.default.default.dc1")]
    v2 = chain["Targets"]["v2.web.default.default.dc1"]
    assert v2["ServiceSubset"] == "v2" and v2["SNI"] == f"v2.web.default.dc1.internal.{TD}"
    assert v2["Subset"] == {"Filter": "Service.Meta.version == 2", "OnlyPassing": True}
    assert set(chain["Targets"]) == {"v1.web.default.default.dc1", "v2.web.default.default.dc1"}


def test_default_subset_connect_timeout_and_request_timeout() -> None:
    chain = compile_with("web", {**SUBSETS, "DefaultSubset": "v1", "ConnectTimeout": "15s", "RequestTimeout": "2s"})
    assert chain["StartNode"] == "resolver:v1.web.default.default.dc1"
    assert chain["Nodes"][chain["StartNode"]]["Resolver"] == {
        "ConnectTimeout": "15s", "RequestTimeout": "2s", "Target": "v1.web.default.default.dc1"}
    assert chain["Targets"]["v1.web.default.default.dc1"]["ConnectTimeout"] == "15s"


def test_redirect_replaces_the_service_everywhere() -> None:
    chain = compile_with("web", {"Kind": "service-resolver", "Name": "web", "Redirect": {"Service": "web-next"}})
    assert chain["StartNode"] == "resolver:web-next.default.default.dc1"
    assert list(chain["Targets"]) == ["web-next.default.default.dc1"]
    assert "Default" not in chain  # a redirect is not the default chain


def test_failover_to_another_service_and_datacenters_never_to_itself() -> None:
    chain = compile_with("web", {"Kind": "service-resolver", "Name": "web", "Failover": {
        "*": {"Service": "backup"}}})
    assert chain["Nodes"]["resolver:web.default.default.dc1"]["Resolver"]["Failover"] == {
        "Targets": ["backup.default.default.dc1"]}
    chain = compile_with("web", {"Kind": "service-resolver", "Name": "web", "Failover": {
        "*": {"Datacenters": ["dc1", "dc2", "dc3"]}}})
    assert chain["Nodes"]["resolver:web.default.default.dc1"]["Resolver"]["Failover"]["Targets"] == [
        "web.default.default.dc2", "web.default.default.dc3"]
    assert chain["Targets"]["web.default.default.dc3"]["SNI"] == f"web.default.dc3.internal.{TD}"


def test_split_into_a_service_with_its_own_splitter_is_flattened() -> None:
    chain = compile_with(
        "web", HTTP_WEB, {"Kind": "service-defaults", "Name": "api", "Protocol": "http"},
        {"Kind": "service-splitter", "Name": "web", "Splits": [{"Weight": 50}, {"Weight": 50, "Service": "api"}]},
        {"Kind": "service-splitter", "Name": "api", "Splits": [
            {"Weight": 60, "Service": "api-a"}, {"Weight": 40, "Service": "api-b"}]},
        {"Kind": "service-defaults", "Name": "api-a", "Protocol": "http"},
        {"Kind": "service-defaults", "Name": "api-b", "Protocol": "http"})
    legs = chain["Nodes"]["splitter:web.default.default"]["Splits"]
    assert [(s["Weight"], s["NextNode"]) for s in legs] == [
        (50, "resolver:web.default.default.dc1"), (30, "resolver:api-a.default.default.dc1"),
        (20, "resolver:api-b.default.default.dc1")]
    assert "splitter:api.default.default" not in chain["Nodes"]  # unused once flattened


def test_router_routes_then_the_catch_all_to_the_service() -> None:
    chain = compile_with("web", HTTP_WEB, SUBSETS, {"Kind": "service-router", "Name": "web", "Routes": [
        {"Match": {"HTTP": {"PathPrefix": "/v2"}}, "Destination": {"ServiceSubset": "v2"}}]})
    routes = chain["Nodes"]["router:web.default.default"]["Routes"]
    assert [r["NextNode"] for r in routes] == ["resolver:v2.web.default.default.dc1",
                                               "resolver:web.default.default.dc1"]
    assert routes[-1]["Definition"] == {"Match": {"HTTP": {"PathPrefix": "/"}}, "Destination": {
        "Service": "web", "Namespace": "default", "Partition": "default"}}


def test_entries_in_any_key_spelling_compile_the_same() -> None:
    snake = {"kind": "service-resolver", "name": "web", "default_subset": "v1",
             "subsets": {"v1": {"filter": "Service.Meta.version == 1", "only_passing": True}}}
    assert canonical(snake) == {"Kind": "service-resolver", "Name": "web", "DefaultSubset": "v1",
                                "Subsets": {"v1": {"Filter": "Service.Meta.version == 1", "OnlyPassing": True}}}
    chain = compile_chain("web", lambda k, n: snake if k == "service-resolver" else None, "dc1", TD).to_json()
    assert chain["Targets"]["v1.web.default.default.dc1"]["Subset"]["OnlyPassing"] is True


@pytest.mark.parametrize(("entries", "message"), [
    ([{"Kind": "service-splitter", "Name": "web", "Splits": [{"Weight": 100, "Service": "api"}]}],
     'discovery chain "web" uses a protocol "tcp" that does not permit advanced routing or splitting behavior'),
    ([HTTP_WEB, {"Kind": "service-splitter", "Name": "web", "Splits": [
        {"Weight": 50}, {"Weight": 50, "Service": "db"}]}],
     'discovery chain "web" uses inconsistent protocols; service "db" has "tcp" which is not "http"'),
    ([HTTP_WEB, {"Kind": "service-splitter", "Name": "web", "Splits": [{"Weight": 100, "ServiceSubset": "v9"}]}],
     'service "web" does not have a subset named "v9"'),
    ([{"Kind": "service-resolver", "Name": "web", "Redirect": {"Service": "a"}},
      {"Kind": "service-resolver", "Name": "a", "Redirect": {"Service": "web"}}],
     "detected circular resolver redirect: [web.default.default.dc1 -> a.default.default.dc1 -> "
     "web.default.default.dc1]"),
])
def test_graphs_consul_refuses(entries: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ChainError) as e:
        compile_with("web", *entries)
    assert str(e.value) == message
