"""service-resolver and service-splitter entries on the dev agent over real HTTP: Consul's decode
errors (400), its Validate texts (500), and its rules across entries (500): a router or splitter
needs an http-like protocol, whichever entry is written or deleted last, and every subset a
split or route names must be one its resolver defines. Each test uses service names of its own."""
from __future__ import annotations

from typing import Any

import consul
import pytest
import requests

from support.agents import RunningAgent


@pytest.fixture
def c(module_agent: RunningAgent) -> consul.Consul:
    return consul.Consul(host="127.0.0.1", port=module_agent.consul_port)


def put(agent: RunningAgent, entry: dict[str, Any]) -> tuple[int, str]:
    r = requests.put(f"{agent.consul_addr}/v1/config", json=entry, timeout=5)
    return r.status_code, r.text.strip()


def delete(agent: RunningAgent, kind: str, name: str) -> tuple[int, str]:
    r = requests.delete(f"{agent.consul_addr}/v1/config/{kind}/{name}", timeout=5)
    return r.status_code, r.text.strip()


def defaults(name: str, protocol: str) -> dict[str, Any]:
    return {"Kind": "service-defaults", "Name": name, "Protocol": protocol}


def resolver(name: str, **fields: Any) -> dict[str, Any]:
    return {"Kind": "service-resolver", "Name": name, **fields}


def splitter(name: str, *splits: dict[str, Any]) -> dict[str, Any]:
    return {"Kind": "service-splitter", "Name": name, "Splits": list(splits)}


V1V2 = {"v1": {"Filter": 'Service.Meta.version == "1"'}, "v2": {"Filter": 'Service.Meta.version == "2"'}}


@pytest.mark.parametrize("entry, status, message", [
    pytest.param(resolver("res-a", Subsets={"V1": {}}), 500,
                 'Subset "V1" is invalid: must be 63 characters or fewer, begin or end with lower case alphanumeric '
                 "characters, and contain lower case alphanumeric characters or '-' in between", id="subset-name"),
    pytest.param(resolver("res-a", Subsets={"v1": {"Filter": "Service.Meta.version =="}}), 500,
                 'Filter for subset "v1" is not a valid expression: 1:24 (23): no match found, expected: '
                 "BAREWORD, STRING", id="filter"),
    pytest.param(resolver("res-a", Subsets=V1V2, DefaultSubset="v3"), 500,
                 'DefaultSubset "v3" is not a valid subset', id="default-subset"),
    pytest.param(resolver("res-a", Redirect={"Service": "x"}, Failover={"*": {"Service": "y"}}), 500,
                 "Redirect and Failover cannot both be set", id="redirect-and-failover"),
    pytest.param(resolver("res-a", Redirect={}), 500, "Redirect is empty", id="redirect-empty"),
    pytest.param(resolver("res-a", Redirect={"ServiceSubset": "v1"}), 500,
                 "Redirect.ServiceSubset defined without Redirect.Service", id="redirect-subset"),
    pytest.param(resolver("res-a", Subsets=V1V2, Failover={"v9": {"Service": "y"}}), 500,
                 'Bad Failover["v9"]: not a valid subset subset', id="failover-key"),
    pytest.param(resolver("res-a", Failover={"*": {}}), 500,
                 'Bad Failover["*"]: one of Service, ServiceSubset, Namespace, Targets, or Datacenters is required',
                 id="failover-empty"),
    pytest.param(resolver("res-a", ConnectTimeout="-1s"), 500, "Bad ConnectTimeout '-1s', must be >= 0",
                 id="negative-timeout"),
    pytest.param(resolver("res-a", ConnectTimeout="5 s"), 400,
                 'Request decoding failed: time: unknown unit " s" in duration "5 s"', id="timeout-syntax"),
    pytest.param(resolver("res-a", Subsets={"v1": {"Filtre": "x"}}), 400,
                 'Request decoding failed: invalid config key "Subsets.v1.Filtre"', id="unknown-key"),
    pytest.param(splitter("spl-a"), 500, "no splits configured", id="no-splits"),
    pytest.param(splitter("spl-a", {"Weight": 90, "ServiceSubset": "v1"}, {"Weight": 9, "ServiceSubset": "v2"}), 500,
                 "the sum of all split weights must be 100, not 99.000000", id="weights"),
    pytest.param(splitter("spl-a", {"Weight": 50}, {"Weight": 50, "Service": "spl-a"}), 500,
                 'split destination occurs more than once: service="spl-a", subset="", namespace="", partition=""',
                 id="duplicate"),
    pytest.param(splitter("spl-a", {"Weight": "most"}), 400,
                 "Request decoding failed: 'Splits[0].Weight' expected type 'float32', got unconvertible type "
                 "'string', value: 'most'", id="weight-type"),
])
def test_invalid_entries_get_consuls_status_and_text(module_agent: RunningAgent, entry: dict[str, Any],
                                                     status: int, message: str) -> None:
    assert put(module_agent, entry) == (status, message)
    assert requests.get(f"{module_agent.consul_addr}/v1/config/{entry['Kind']}/{entry['Name']}",
                        timeout=5).status_code == 404


def test_a_resolver_comes_back_as_consul_stores_it(c: consul.Consul) -> None:
    entry = {"kind": "service-resolver", "name": "res-b", "default_subset": "v1", "connect_timeout": "1500ms",
             "subsets": {"v1": {"filter": 'Service.Meta.version == "1"', "only_passing": True}}}
    assert c.config.set("service-resolver", "res-b", entry) is True
    got = c.config.get("service-resolver", "res-b")
    assert (got["DefaultSubset"], got["ConnectTimeout"]) == ("v1", "1.5s")
    assert got["Subsets"] == {"v1": {"Filter": 'Service.Meta.version == "1"', "OnlyPassing": True}}
    c.config.delete("service-resolver", "res-b")


def test_a_split_on_a_tcp_service_is_refused_until_it_is_http(c: consul.Consul, module_agent: RunningAgent) -> None:
    split = splitter("spl-b", {"Weight": 90, "ServiceSubset": "v1"}, {"Weight": 10, "ServiceSubset": "v2"})
    tcp = 'discovery chain "spl-b" uses a protocol "tcp" that does not permit advanced routing or splitting behavior'
    assert put(module_agent, split) == (500, tcp)  # no service-defaults: tcp
    assert c.config.set("service-defaults", "spl-b", defaults("spl-b", "http")) is True
    assert put(module_agent, split) == (500, 'service "spl-b" does not have a subset named "v1"')
    assert c.config.set("service-resolver", "spl-b", resolver("spl-b", Subsets=V1V2)) is True
    assert put(module_agent, {**split, "Splits": [{"Weight": 89.996, "ServiceSubset": "v1"},
                                                  {"Weight": 10.004, "ServiceSubset": "v2"}]}) == (200, "true")
    assert [s["Weight"] for s in c.config.get("service-splitter", "spl-b")["Splits"]] == [90, 10]
    # The other entries cannot now pull the chain out from under the splitter.
    assert put(module_agent, defaults("spl-b", "tcp")) == (500, tcp)
    assert delete(module_agent, "service-defaults", "spl-b") == (500, tcp)
    assert put(module_agent, resolver("spl-b", Subsets={"v1": V1V2["v1"]})) == \
        (500, 'service "spl-b" does not have a subset named "v2"')
    assert delete(module_agent, "service-resolver", "spl-b") == \
        (500, 'service "spl-b" does not have a subset named "v1"')
    assert c.config.get("service-defaults", "spl-b")["Protocol"] == "http"
    for kind in ("service-splitter", "service-resolver", "service-defaults"):
        assert delete(module_agent, kind, "spl-b")[0] == 200


def test_a_route_to_an_undefined_subset_or_on_tcp_is_refused(c: consul.Consul, module_agent: RunningAgent) -> None:
    route = {"Kind": "service-router", "Name": "rtr-a", "Routes": [
        {"Match": {"HTTP": {"PathPrefix": "/admin"}}, "Destination": {"Service": "rtr-b", "ServiceSubset": "v2"}}]}
    assert c.config.set("proxy-defaults", "global", {"Kind": "proxy-defaults", "Name": "global",
                                                      "Config": {"protocol": "tcp"}}) is True
    try:
        assert put(module_agent, route) == (500, 'discovery chain "rtr-a" uses a protocol "tcp" that does not permit '
                                                 "advanced routing or splitting behavior")
        assert c.config.set("service-defaults", "rtr-a", defaults("rtr-a", "http")) is True
        assert put(module_agent, route) == (500, 'service "rtr-b" does not have a subset named "v2"')
        assert c.config.set("service-resolver", "rtr-b", resolver("rtr-b", Subsets=V1V2)) is True
        assert put(module_agent, route) == (200, "true")
    finally:
        for kind, name in (("service-router", "rtr-a"), ("service-resolver", "rtr-b"),
                           ("service-defaults", "rtr-a"), ("proxy-defaults", "global")):
            delete(module_agent, kind, name)
