"""Consul's service-intentions rules on the dev agent, over real HTTP: every rule of Consul's
ServiceIntentionsConfigEntry.Validate answers 500 with Consul's own text, plus ours (a regex must be
one Envoy loads), and a refused write leaves the stored entry exactly as it was."""
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
