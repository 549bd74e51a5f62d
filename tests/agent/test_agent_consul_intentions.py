"""Consul's intention endpoints on the dev agent over real HTTP (py-consul): /exact upsert, read and
delete stored as service-intentions entries; /check and /match following Consul's precedence and
the default policy; the legacy create and its refusal for config-entry-managed destinations."""
from __future__ import annotations

from collections.abc import Callable

import consul
import pytest
import requests

from support.agents import RunningAgent


@pytest.fixture
def c(module_agent: RunningAgent) -> consul.Consul:
    return consul.Consul(host="127.0.0.1", port=module_agent.consul_port)


def test_exact_upsert_read_delete_is_a_config_entry(c: consul.Consul) -> None:
    assert c.connect.intentions.upsert("ex-web", "ex-db", action="deny", description="no") is True
    got = c.connect.intentions.read("ex-web", "ex-db")
    assert (got["SourceName"], got["DestinationName"], got["Action"], got["Precedence"]) == (
        "ex-web", "ex-db", "deny", 9)
    assert got["Description"] == "no"
    entry = c.config.get("service-intentions", "ex-db")
    assert [(s["Name"], s["Action"]) for s in entry["Sources"]] == [("ex-web", "deny")]

    assert c.connect.intentions.upsert("ex-web", "ex-db", action="allow") is True  # replace
    assert c.connect.intentions.read("ex-web", "ex-db")["Action"] == "allow"
    assert c.connect.intentions.upsert("ex-api", "ex-db", action="deny") is True
    assert len(c.config.get("service-intentions", "ex-db")["Sources"]) == 2

    assert c.connect.intentions.delete("ex-web", "ex-db") is True
    assert c.connect.intentions.read("ex-web", "ex-db") is None
    assert [s["Name"] for s in c.config.get("service-intentions", "ex-db")["Sources"]] == ["ex-api"]
    assert c.connect.intentions.delete("ex-api", "ex-db") is True
    assert c.config.get("service-intentions", "ex-db") is None  # last source gone: entry deleted


def test_exact_refuses_bad_input(module_agent: RunningAgent) -> None:
    url = f"{module_agent.consul_addr}/v1/connect/intentions/exact"
    r = requests.put(url, params={"source": "a"}, json={"Action": "allow"}, timeout=5)
    assert r.status_code == 400 and "destination" in r.text
    r = requests.put(url, params={"source": "a", "destination": "b"}, json={"Action": "perhaps"}, timeout=5)
    assert r.status_code == 400 and "Action: must be allow or deny" in r.text
    r = requests.put(url, params={"source": "a", "destination": "b"}, json={"Action": "allow", "Meta": {"k": "v"}},
                     timeout=5)
    assert r.status_code == 400 and "Meta" in r.text
    r = requests.put(url, params={"source": "a", "destination": "b"}, data="{", timeout=5)
    assert r.status_code == 400 and r.text.startswith("Request decode failed")
    r = requests.get(url, params={"source": "a", "destination": "b"}, timeout=5)
    assert r.status_code == 404 and r.text.strip() == "Intention not found"


def test_check_follows_precedence_and_default_allow(c: consul.Consul) -> None:
    c.connect.intentions.upsert("*", "pr-db", action="deny")
    c.connect.intentions.upsert("pr-web", "pr-db", action="allow")
    c.connect.intentions.upsert("pr-bad", "*", action="deny")
    try:
        assert c.connect.intentions.check("pr-web", "pr-db") is True     # exact (9) beats * -> db (8)
        assert c.connect.intentions.check("pr-api", "pr-db") is False    # * -> db deny (8)
        assert c.connect.intentions.check("pr-bad", "pr-db") is False    # * -> db (8) beats bad -> * (6)
        assert c.connect.intentions.check("pr-bad", "pr-cache") is False  # bad -> * (6)
        assert c.connect.intentions.check("pr-api", "pr-cache") is True  # nothing matches: default allow
        matched = c.connect.intentions.match("destination", "pr-db")["pr-db"]
        assert [(m["SourceName"], m["DestinationName"], m["Precedence"]) for m in matched] == [
            ("pr-web", "pr-db", 9), ("*", "pr-db", 8), ("pr-bad", "*", 6)]  # wildcard destinations apply too
        by_source = c.connect.intentions.match("source", "pr-bad")["pr-bad"]
        assert [(m["SourceName"], m["DestinationName"]) for m in by_source][-1] == ("pr-bad", "*")
        assert ("*", "pr-db") in [(m["SourceName"], m["DestinationName"]) for m in by_source]
        listed = c.connect.intentions.list()
        mine = [(i["SourceName"], i["DestinationName"]) for i in listed
                if "pr-" in i["SourceName"] + i["DestinationName"]]
        assert mine == [("pr-web", "pr-db"), ("*", "pr-db"), ("pr-bad", "*")]  # by precedence
    finally:
        c.connect.intentions.delete("*", "pr-db")
        c.connect.intentions.delete("pr-web", "pr-db")
        c.connect.intentions.delete("pr-bad", "*")


def test_l7_intention_counts_as_deny_in_check(c: consul.Consul) -> None:
    c.config.set("service-defaults", "l7c-api", {"Kind": "service-defaults", "Name": "l7c-api", "Protocol": "http"})
    assert c.connect.intentions.upsert("l7c-web", "l7c-api", permissions=[
        {"Action": "allow", "HTTP": {"PathPrefix": "/"}}]) is True
    try:
        assert c.connect.intentions.check("l7c-web", "l7c-api") is False
        assert c.connect.intentions.read("l7c-web", "l7c-api")["Permissions"][0]["Action"] == "allow"
    finally:
        c.connect.intentions.delete("l7c-web", "l7c-api")
        c.config.delete("service-defaults", "l7c-api")


def test_default_policy_deny(agent_factory: Callable[..., RunningAgent]) -> None:
    agent = agent_factory("--default-policy", "deny")
    c = consul.Consul(host="127.0.0.1", port=agent.consul_port)
    assert c.connect.intentions.check("a", "b") is False
    c.connect.intentions.upsert("a", "b", action="allow")
    assert c.connect.intentions.check("a", "b") is True
    assert c.connect.intentions.check("c", "b") is False


def test_legacy_create_and_its_refusal_for_config_entries(module_agent: RunningAgent, c: consul.Consul) -> None:
    url = f"{module_agent.consul_addr}/v1/connect/intentions"
    r = requests.post(url, json={"SourceName": "lg-invoice", "DestinationName": "lg-tax", "Action": "deny",
                                 "SourceType": "consul"}, timeout=5)
    assert r.status_code == 200
    legacy_id = r.json()["ID"]
    assert len(legacy_id) == 36
    assert c.connect.intentions.check("lg-invoice", "lg-tax") is False
    assert requests.get(f"{url}/{legacy_id}", timeout=5).json()["Action"] == "deny"
    dup = requests.post(url, json={"SourceName": "lg-invoice", "DestinationName": "lg-tax", "Action": "allow"},
                        timeout=5)
    assert dup.status_code == 500 and "duplicate intention found" in dup.text
    assert requests.delete(f"{url}/{legacy_id}", timeout=5).json() is True
    assert c.connect.intentions.check("lg-invoice", "lg-tax") is True

    c.connect.intentions.upsert("lg-order", "lg-invoice", action="allow")  # managed as a config entry
    refused = requests.post(url, json={"SourceName": "lg-x", "DestinationName": "lg-invoice", "Action": "deny"},
                            timeout=5)
    assert refused.status_code == 500
    assert refused.text.strip() == ('cannot use legacy intention API to edit intentions with a destination of '
                                    '"lg-invoice" after editing them via a service-intentions config entry')
    assert [s["Name"] for s in c.config.get("service-intentions", "lg-invoice")["Sources"]] == ["lg-order"]
    bad = requests.post(url, json={"SourceName": "lg-y", "DestinationName": "lg-z", "Action": "sometimes"}, timeout=5)
    assert bad.status_code == 400 and "must be allow or deny" in bad.text
    c.connect.intentions.delete("lg-order", "lg-invoice")


def test_check_and_match_need_their_parameters(module_agent: RunningAgent) -> None:
    base = f"{module_agent.consul_addr}/v1/connect/intentions"
    r = requests.get(f"{base}/check", params={"source": "a"}, timeout=5)
    assert r.status_code == 400 and "'destination'" in r.text
    r = requests.get(f"{base}/match", params={"by": "sideways", "name": "a"}, timeout=5)
    assert r.status_code == 400 and "'by'" in r.text
