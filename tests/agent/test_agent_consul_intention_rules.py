"""Consul's service-intentions rules on the dev agent, over real HTTP: every rule of Consul's
ServiceIntentionsConfigEntry.Validate answers 500 with Consul's own text, plus ours (a regex must be
one Envoy loads), and a refused write leaves the stored entry exactly as it was. Likewise its
service-router, service-resolver and service-splitter rules: decode errors (400), Validate texts
(500), and its rules across entries (500): a router or splitter needs an http-like protocol,
whichever entry is written or deleted last, and every subset a split or route names must be one its
resolver defines. One agent for the module; each test uses service names of its own."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import consul
import pytest
import requests

from support.agents import RunningAgent

DEST = "rules-api"


@pytest.fixture(scope="module")
def c(module_agent: RunningAgent) -> Iterator[consul.Consul]:
    client = consul.Consul(host="127.0.0.1", port=module_agent.consul_port)
    assert client.config.set("service-defaults", DEST, {"Kind": "service-defaults", "Name": DEST,
                                                         "Protocol": "http"}) is True
    # A valid entry that every refused write must leave untouched.
    assert client.config.set("service-intentions", DEST, l7_entry({"PathPrefix": "/ok"})) is True
    yield client
    client.config.delete("service-intentions", DEST)
    client.config.delete("service-defaults", DEST)


def l7_entry(http: dict[str, Any] | None, action: str = "allow", **source: Any) -> dict[str, Any]:
    perm: dict[str, Any] = {"Action": action}
    if http is not None:
        perm["HTTP"] = http
    return {"Kind": "service-intentions", "Name": DEST,
            "Sources": [{"Name": "web", "Permissions": [perm], **source}]}


def l4_entry(name: str, *sources: dict[str, Any]) -> dict[str, Any]:
    return {"Kind": "service-intentions", "Name": name, "Sources": list(sources)}


P = "Sources[0].Permissions[0].HTTP"

CASES = [
    pytest.param(l7_entry({"PathRegex": "/api/(v1"}),
                 f"{P}.PathRegex is not valid: invalid RE2 regular expression: missing ): /api/(v1",
                 id="path-regex-syntax"),
    pytest.param(l7_entry({"PathRegex": "/a{100}"}),
                 f"{P}.PathRegex is not valid: RE2 program size of 105 > max program size of 100 that Envoy "
                 "accepts; simplify the regular expression", id="path-regex-program-size"),
    pytest.param(l7_entry({"PathRegex": "/a{1001}"}),
                 f"{P}.PathRegex is not valid: invalid RE2 regular expression: invalid repetition size: {{1001}}",
                 id="path-regex-repetition-limit"),
    pytest.param(l7_entry({"PathRegex": "(?=/admin)"}),
                 f"{P}.PathRegex is not valid: invalid RE2 regular expression: invalid perl operator: (?=",
                 id="path-regex-lookahead"),
    pytest.param(l7_entry({"Header": [{"Name": "x-user", "Regex": "[admin"}]}),
                 f"{P}.Header[0].Regex is not valid: invalid RE2 regular expression: missing ]: [admin",
                 id="header-regex-syntax"),
    pytest.param(l7_entry({"Methods": ["GET("]}), f'{P}.Methods contains an invalid method "GET("',
                 id="method-not-http"),
    pytest.param(l7_entry({"Methods": ["GET", "FETCH"]}), f'{P}.Methods contains an invalid method "FETCH"',
                 id="method-unknown"),
    pytest.param(l7_entry({"Methods": ["get", "GET"]}), f'{P}.Methods contains "GET" more than once',
                 id="method-twice-after-uppercasing"),
    pytest.param(l7_entry({"Header": [{"Name": "x-a", "Exact": "1", "Prefix": "1"}]}),
                 f"{P}.Header[0] should only contain one of Present, Exact, Prefix, Suffix, or Regex",
                 id="header-two-matchers"),
    pytest.param(l7_entry({"Header": [{"Name": "x-a", "Invert": True}]}),
                 f"{P}.Header[0] should only contain one of Present, Exact, Prefix, Suffix, or Regex",
                 id="header-no-matcher"),
    pytest.param(l7_entry({"Header": [{"Name": "", "Present": True}]}),
                 f"{P}.Header[0] missing required Name field", id="header-no-name"),
    pytest.param(l7_entry({"Header": [{"Name": "x-a\r\nx-b", "Present": True}]}),
                 f"{P}.Header[0].Name must not contain CR, LF or NUL", id="header-name-crlf"),
    pytest.param(l7_entry({"PathExact": "api"}), f"{P}.PathExact doesn't start with '/': \"api\"",
                 id="path-exact-slash"),
    pytest.param(l7_entry({"PathPrefix": "api/"}), f"{P}.PathPrefix doesn't start with '/': \"api/\"",
                 id="path-prefix-slash"),
    pytest.param(l7_entry({}), f"{P} should not be empty", id="http-empty"),
    pytest.param(l7_entry(None), f"{P} is required", id="http-missing"),
    pytest.param(l4_entry("*", {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/"}}]}),
                 "Sources[0].Permissions cannot be specified on intentions with wildcarded destinations",
                 id="permissions-on-wildcard-destination"),
    pytest.param(l4_entry(DEST), "At least one source is required", id="no-sources"),
    pytest.param(l4_entry("api*", {"Name": "web", "Action": "allow"}),
                 "Name: wildcard character '*' cannot be used with partial values", id="partial-wildcard-destination"),
    pytest.param(l4_entry(DEST, {"Name": "we*", "Action": "allow"}),
                 "Sources[0].Name: wildcard character '*' cannot be used with partial values",
                 id="partial-wildcard-source"),
    pytest.param(l4_entry(DEST, {"Name": "web", "Action": "allow", "Type": "external"}),
                 "Sources[0].Type must be set to 'consul'", id="source-type"),
    pytest.param(l4_entry(DEST, {"Name": "web", "Action": "allow", "Description": "x" * 513}),
                 "Sources[0].Description exceeds maximum length 512", id="description-length"),
]


@pytest.mark.parametrize("entry, message", CASES)
def test_invalid_intentions_are_refused_with_consuls_status_and_text(
        c: consul.Consul, module_agent: RunningAgent, entry: dict[str, Any], message: str) -> None:
    before = c.config.get("service-intentions", DEST)
    r = requests.put(f"{module_agent.consul_addr}/v1/config", json=entry, timeout=5)
    assert (r.status_code, r.text.strip()) == (500, message)
    assert c.config.get("service-intentions", DEST) == before
    r = requests.get(f"{module_agent.consul_addr}/v1/config/service-intentions/{entry['Name']}", timeout=5)
    assert r.status_code == (200 if entry["Name"] == DEST else 404)


def test_the_exact_intention_endpoint_applies_the_same_rules(c: consul.Consul, module_agent: RunningAgent) -> None:
    before = c.config.get("service-intentions", DEST)
    r = requests.put(f"{module_agent.consul_addr}/v1/connect/intentions/exact",
                     params={"source": "web", "destination": DEST},
                     json={"Permissions": [{"Action": "deny", "HTTP": {"Methods": ["GET("]}}]}, timeout=5)
    assert (r.status_code, r.text.strip()) == (500, f'{P}.Methods contains an invalid method "GET("')
    assert c.config.get("service-intentions", DEST) == before


def test_valid_l7_permissions_still_land(c: consul.Consul) -> None:
    entry = l7_entry({"PathRegex": "^/api/v[0-9]+/.*$", "Methods": ["get", "post"],
                      "Header": [{"Name": "x-user", "Regex": "^(alice|bob)$", "Invert": True}]}, action="deny")
    before = c.config.get("service-intentions", DEST)
    assert c.config.set("service-intentions", DEST, entry) is True
    got = c.config.get("service-intentions", DEST)["Sources"][0]["Permissions"][0]
    assert got["HTTP"]["PathRegex"] == "^/api/v[0-9]+/.*$" and got["Action"] == "deny"
    assert c.config.set("service-intentions", DEST, {k: v for k, v in before.items()
                                                      if k not in ("CreateIndex", "ModifyIndex")}) is True


def router(*routes: dict[str, Any]) -> dict[str, Any]:
    return {"Kind": "service-router", "Name": "rules-web", "Routes": list(routes)}


@pytest.mark.parametrize("entry, message", [
    pytest.param(router({"Match": {"HTTP": {"PathExact": "api"}}}),
                 "Route[0] PathExact doesn't start with '/': \"api\"",
                 id="path-exact-slash"),
    pytest.param(router({"Match": {"HTTP": {"path_prefix": "/a", "PathRegex": "/b"}}}),
                 "Route[0] should only contain at most one of PathExact, PathPrefix, or PathRegex", id="two-paths"),
    pytest.param(router({}, {"Match": {"HTTP": {"PathRegex": "/v(1"}}}),
                 "Route[1] PathRegex is not valid: invalid RE2 regular expression: missing ): /v(1", id="path-regex"),
    pytest.param(router({"Match": {"HTTP": {"Header": [{"Name": "x", "Exact": "1", "Regex": "1"}]}}}),
                 "Route[0] Header[0] should only contain one of Present, Exact, Prefix, Suffix, or Regex",
                 id="header-two-matchers"),
    pytest.param(router({"Match": {"HTTP": {"QueryParam": [{"Name": "", "Present": True}]}}}),
                 "Route[0] QueryParam[0] missing required Name field", id="query-no-name"),
    pytest.param(router({"Match": {"HTTP": {"QueryParam": [{"Name": "q", "Regex": "(?=x)"}]}}}),
                 "Route[0] QueryParam[0] Regex is not valid: "
                 "invalid RE2 regular expression: invalid perl operator: (?=",
                 id="query-regex"),
    pytest.param(router({"Match": {"HTTP": {"Methods": ["GET("]}}}),
                 'Route[0] Methods contains an invalid method "GET("', id="method"),
    pytest.param(router({"Destination": {"PrefixRewrite": "/v2"}}),
                 "Route[0] cannot make use of PrefixRewrite without configuring either PathExact or PathPrefix",
                 id="prefix-rewrite"),
    pytest.param(router({"Destination": {"RetryOn": ["5xx", "sometimes"]}}),
                 'Route[0] contains an invalid retry condition: "sometimes"', id="retry-on"),
])
def test_invalid_service_routers_are_refused_with_consuls_status_and_text(
        module_agent: RunningAgent, entry: dict[str, Any], message: str) -> None:
    r = requests.put(f"{module_agent.consul_addr}/v1/config", json=entry, timeout=5)
    assert (r.status_code, r.text.strip()) == (500, message)
    assert requests.get(f"{module_agent.consul_addr}/v1/config/service-router/rules-web", timeout=5).status_code == 404


def test_a_valid_service_router_lands(c: consul.Consul) -> None:
    entry = router({"Match": {"HTTP": {"PathPrefix": "/api", "Methods": ["get"],
                                       "Header": [{"Name": "x-v", "Regex": "^v[0-9]$"}]}},
                    "Destination": {"PrefixRewrite": "/", "RetryOn": ["5xx"]}})
    c.config.set("service-defaults", "rules-web", {"Kind": "service-defaults", "Name": "rules-web", "Protocol": "http"})
    assert c.config.set("service-router", "rules-web", entry) is True
    assert c.config.get("service-router", "rules-web")["Routes"][0]["Destination"]["PrefixRewrite"] == "/"
    c.config.delete("service-router", "rules-web")
    c.config.delete("service-defaults", "rules-web")


# --- service-resolver / service-splitter, and the rules across entries -----------------------------


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
             "subsets": {"v1": {"filter": 'Service.Meta.version == "1"', "only_passing": "true"}}}
    assert c.config.set("service-resolver", "res-b", entry) is True
    got = c.config.get("service-resolver", "res-b")
    assert (got["DefaultSubset"], got["ConnectTimeout"]) == ("v1", "1.5s")
    assert got["Subsets"] == {"v1": {"Filter": 'Service.Meta.version == "1"', "OnlyPassing": True}}
    c.config.delete("service-resolver", "res-b")


def test_a_split_on_a_tcp_service_is_refused_until_it_is_http(c: consul.Consul, module_agent: RunningAgent) -> None:
    split = splitter("spl-b", {"Weight": 90, "ServiceSubset": "v1"}, {"Weight": 10, "ServiceSubset": "v2"})
    tcp = 'discovery chain "spl-b" uses a protocol "tcp" that does not permit advanced routing or splitting behavior'
    # Consul's compiler meets the subsets first, the protocol at the end.
    assert put(module_agent, split) == (500, 'service "spl-b" does not have a subset named "v1"')
    assert c.config.set("service-resolver", "spl-b", resolver("spl-b", Subsets=V1V2)) is True  # fine on tcp
    assert put(module_agent, split) == (500, tcp)  # no service-defaults: tcp
    assert c.config.set("service-defaults", "spl-b", defaults("spl-b", "http")) is True
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


def test_a_route_needs_its_subset_and_one_http_protocol_along_the_chain(c: consul.Consul,
                                                                         module_agent: RunningAgent) -> None:
    route = {"Kind": "service-router", "Name": "rtr-a", "Routes": [
        {"Match": {"HTTP": {"PathPrefix": "/admin"}}, "Destination": {"Service": "rtr-b", "ServiceSubset": "v2"}}]}
    assert c.config.set("proxy-defaults", "global", {"Kind": "proxy-defaults", "Name": "global",
                                                      "Config": {"protocol": "tcp"}}) is True
    try:
        assert put(module_agent, route) == (500, 'service "rtr-b" does not have a subset named "v2"')
        assert c.config.set("service-resolver", "rtr-b", resolver("rtr-b", Subsets=V1V2)) is True
        assert put(module_agent, route) == (500, 'discovery chain "rtr-a" uses a protocol "tcp" that does not permit '
                                                 "advanced routing or splitting behavior")
        assert c.config.set("service-defaults", "rtr-a", defaults("rtr-a", "http")) is True
        assert put(module_agent, route) == (500, 'discovery chain "rtr-a" uses inconsistent protocols; service '
                                                 '"rtr-b" has "tcp" which is not "http"')
        assert c.config.set("service-defaults", "rtr-b", defaults("rtr-b", "http")) is True
        assert put(module_agent, route) == (200, "true")
    finally:
        for kind, name in (("service-router", "rtr-a"), ("service-resolver", "rtr-b"), ("service-defaults", "rtr-a"),
                           ("service-defaults", "rtr-b"), ("proxy-defaults", "global")):
            delete(module_agent, kind, name)


# --- what Consul CE refuses, and what the dev agent's data plane cannot serve ------------------------

CE = "requires Consul Enterprise"
NOT_SERVED = "is not supported by the nomadmesh dev agent"
NS_KEY = "namespaces are a consul enterprise feature"


@pytest.mark.parametrize("entry, status, message", [
    # Consul CE's own answers: its EnterpriseMeta has no fields (an unused key), ValidateEnterprise.
    pytest.param(resolver("ent-a", Namespace="ns1"), 400,
                 f'Request decoding failed: invalid config key "Namespace", {NS_KEY}', id="entry-namespace"),
    pytest.param({**splitter("ent-a", {"Weight": 100}), "Partition": "ap1"}, 400,
                 'Request decoding failed: invalid config key "Partition"', id="entry-partition"),
    pytest.param({**router(), "Name": "ent-a", "namespace": "ns1"}, 400,
                 f'Request decoding failed: invalid config key "namespace", {NS_KEY}', id="router-namespace"),
    pytest.param({**router({"Destination": {"Service": "x", "Peer": "p"}}), "Name": "ent-a"}, 400,
                 'Request decoding failed: invalid config key "Routes[0].Destination.Peer"', id="route-peer"),
    pytest.param(resolver("ent-a", Redirect={"Service": "x", "Namespace": "ns1"}), 500,
                 f"Redirect: Setting Namespace {CE}", id="redirect-namespace"),
    pytest.param(resolver("ent-a", Redirect={"Service": "x", "Partition": "ap1"}), 500,
                 f"Redirect: Setting Partition {CE}", id="redirect-partition"),
    pytest.param(resolver("ent-a", Redirect={"SamenessGroup": "g"}), 500,
                 f"Redirect: Setting SamenessGroup {CE}", id="redirect-sameness-group"),
    pytest.param(resolver("ent-a", Failover={"*": {"Service": "x", "Namespace": "ns1"}}), 500,
                 f'Bad Failover["*"]: Setting Namespace {CE}', id="failover-namespace"),
    pytest.param(resolver("ent-a", Failover={"*": {"SamenessGroup": "g"}}), 500,
                 f'Bad Failover["*"]: Setting SamenessGroup {CE}', id="failover-sameness-group"),
    pytest.param(resolver("ent-a", Failover={"*": {"Service": "x", "Policy": {"Mode": "order-by-locality"}}}), 500,
                 f'Bad Failover["*"]: Setting failover policies {CE}', id="failover-policy"),
    pytest.param(resolver("ent-a", Failover={"*": {"Targets": [{"Service": "x", "Namespace": "ns1"}]}}), 500,
                 f'Bad Failover["*"].Targets[0]: Setting Namespace {CE}', id="target-namespace"),
    pytest.param(resolver("ent-a", Failover={"*": {"Targets": [{"Service": "x", "Partition": "ap1"}]}}), 500,
                 f'Bad Failover["*"].Targets[0]: Setting Partition {CE}', id="target-partition"),
    pytest.param(resolver("ent-a", PrioritizeByLocality={"Mode": "failover"}), 500,
                 "Prioritize-by-locality requires Consul Enterprise", id="prioritize-by-locality"),
    # Accepted by Consul CE, not served by the agent (one datacenter, no peers, the default namespace).
    pytest.param(resolver("ent-a", Redirect={"Service": "x", "Peer": "p"}), 400,
                 f"Redirect.Peer {NOT_SERVED} (it has no cluster peers)", id="redirect-peer"),
    pytest.param(resolver("ent-a", Redirect={"Service": "x", "Datacenter": "dc9"}), 400,
                 f'Redirect.Datacenter "dc9" {NOT_SERVED} (its only datacenter is "DC")', id="redirect-datacenter"),
    pytest.param(resolver("ent-a", Failover={"*": {"Datacenters": ["DC", "dc9"]}}), 400,
                 f'Bad Failover["*"]: Datacenter "dc9" {NOT_SERVED} (its only datacenter is "DC")',
                 id="failover-datacenters"),
    pytest.param(resolver("ent-a", Failover={"*": {"Targets": [{"Service": "x", "Peer": "p"}]}}), 400,
                 f'Bad Failover["*"].Targets[0]: Peer {NOT_SERVED} (it has no cluster peers)', id="target-peer"),
    pytest.param(resolver("ent-a", Failover={"*": {"Targets": [{"Service": "x", "Datacenter": "dc9"}]}}), 400,
                 f'Bad Failover["*"].Targets[0]: Datacenter "dc9" {NOT_SERVED} (its only datacenter is "DC")',
                 id="target-datacenter"),
    pytest.param(resolver("ent-a", Failover={"*": {"Service": "x", "Policy": {"Regions": ["eu"]}}}), 400,
                 f'Bad Failover["*"]: Policy.Regions {NOT_SERVED}', id="failover-regions"),
    pytest.param(splitter("ent-a", {"Weight": 100, "Service": "x", "Namespace": "ns1"}), 400,
                 f'Splits[0].Namespace "ns1" {NOT_SERVED} (it has the default namespace only)', id="split-namespace"),
    pytest.param(splitter("ent-a", {"Weight": 100, "Service": "x", "Partition": "ap1"}), 400,
                 f'Splits[0].Partition "ap1" {NOT_SERVED} (it has the default partition only)', id="split-partition"),
    pytest.param({**router({"Destination": {"Service": "x", "Namespace": "ns1"}}), "Name": "ent-a"}, 400,
                 f'Routes[0].Destination.Namespace "ns1" {NOT_SERVED} (it has the default namespace only)',
                 id="route-namespace"),
    pytest.param({**router({"Destination": {"Service": "x", "Partition": "ap1"}}), "Name": "ent-a"}, 400,
                 f'Routes[0].Destination.Partition "ap1" {NOT_SERVED} (it has the default partition only)',
                 id="route-partition"),
    pytest.param({**router({"Match": {"HTTP": {"Header": [{"Name": "x", "Exact": "a", "IgnoreCase": True}]}}}),
                  "Name": "ent-a"}, 400, f"Routes[0].Match.HTTP.Header[0].IgnoreCase {NOT_SERVED}",
                 id="header-ignore-case"),
])
def test_what_the_data_plane_cannot_serve_is_refused(c: consul.Consul, module_agent: RunningAgent,
                                                     entry: dict[str, Any], status: int, message: str) -> None:
    dc = c.agent.self()["Config"]["Datacenter"]
    entry = _with_datacenter(entry, dc)
    assert put(module_agent, entry) == (status, message.replace('"DC"', f'"{dc}"'))
    assert requests.get(f"{module_agent.consul_addr}/v1/config/{entry['Kind']}/ent-a", timeout=5).status_code == 404


def _with_datacenter(value: Any, dc: str) -> Any:
    """`value` with the placeholder datacenter "DC" replaced by the agent's own."""
    if isinstance(value, dict):
        return {k: _with_datacenter(v, dc) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_datacenter(v, dc) for v in value]
    return dc if value == "DC" else value


def test_the_agents_own_datacenter_and_the_default_namespace_still_land(c: consul.Consul,
                                                                        module_agent: RunningAgent) -> None:
    dc = c.agent.self()["Config"]["Datacenter"]
    entries = [*(defaults(name, "http") for name in ("ent-b", "ent-c", "ent-d")),
               resolver("ent-b", Redirect={"Service": "ent-c", "Datacenter": dc}),
               resolver("ent-c", Failover={"*": {"Targets": [{"Service": "ent-d", "Datacenter": dc}],
                                               "Policy": {"Mode": ""}}}),
               splitter("ent-b", {"Weight": 100, "Service": "ent-c", "Namespace": "default", "Partition": "default"})]
    try:
        for entry in entries:
            assert put(module_agent, entry) == (200, "true"), entry
        chain = requests.get(f"{module_agent.consul_addr}/v1/discovery-chain/ent-b", timeout=5).json()["Chain"]
        ent_c, ent_d = (f"{name}.default.default.{dc}" for name in ("ent-c", "ent-d"))
        assert chain["Nodes"][f"resolver:{ent_c}"]["Resolver"]["Failover"] == {"Targets": [ent_d]}
    finally:
        for entry in reversed(entries):
            delete(module_agent, entry["Kind"], entry["Name"])
