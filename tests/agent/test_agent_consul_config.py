"""Consul config entries on the dev agent over real HTTP (py-consul): set/get/list/delete with cas,
service-intentions validated and returned with Precedence, service-defaults protocols, the L7
protocol rule, Consul's error texts, and 20 concurrent CAS writers on one entry all landing."""
from __future__ import annotations

import threading
from typing import Any

import consul
import pytest
import requests

from support.agents import RunningAgent


@pytest.fixture
def c(module_agent: RunningAgent) -> consul.Consul:
    return consul.Consul(host="127.0.0.1", port=module_agent.consul_port)


def intentions_entry(name: str, *sources: tuple[str, str]) -> dict[str, Any]:
    return {"Kind": "service-intentions", "Name": name,
            "Sources": [{"Name": s, "Action": a} for s, a in sources]}


def test_set_get_list_delete(c: consul.Consul) -> None:
    assert c.config.set("service-defaults", "cfg-a", {"Kind": "service-defaults", "Name": "cfg-a",
                                                      "Protocol": "http"}) is True
    got = c.config.get("service-defaults", "cfg-a")
    assert got["Protocol"] == "http" and got["CreateIndex"] == got["ModifyIndex"] > 0
    names = [e["Name"] for e in c.config.list("service-defaults")]
    assert "cfg-a" in names
    c.config.delete("service-defaults", "cfg-a")
    assert c.config.get("service-defaults", "cfg-a") is None


def test_missing_entry_is_404_with_consuls_text(module_agent: RunningAgent) -> None:
    r = requests.get(f"{module_agent.consul_addr}/v1/config/service-intentions/x", timeout=5)
    assert r.status_code == 404
    assert r.text.strip() == 'Config entry not found for "service-intentions" / "x"'


def test_cas_on_set_and_delete(c: consul.Consul, module_agent: RunningAgent) -> None:
    entry = intentions_entry("cas-db", ("web", "allow"))
    assert c.config.set("service-intentions", "cas-db", entry, cas=0) is True
    assert c.config.set("service-intentions", "cas-db", entry, cas=0) is False  # exists already
    current = c.config.get("service-intentions", "cas-db")
    changed = intentions_entry("cas-db", ("web", "deny"))
    assert c.config.set("service-intentions", "cas-db", changed, cas=current["ModifyIndex"] + 99) is False
    assert c.config.get("service-intentions", "cas-db")["Sources"][0]["Action"] == "allow"
    assert c.config.set("service-intentions", "cas-db", changed, cas=current["ModifyIndex"]) is True
    latest = c.config.get("service-intentions", "cas-db")
    url = f"{module_agent.consul_addr}/v1/config/service-intentions/cas-db"
    assert requests.delete(url, params={"cas": current["ModifyIndex"]}, timeout=5).json() is False
    assert c.config.get("service-intentions", "cas-db") is not None
    assert requests.delete(url, params={"cas": latest["ModifyIndex"]}, timeout=5).json() is True
    assert c.config.get("service-intentions", "cas-db") is None


def test_intention_sources_come_back_with_precedence(c: consul.Consul) -> None:
    entry = intentions_entry("prec-db", ("*", "allow"), ("web", "deny"))
    assert c.config.set("service-intentions", "prec-db", entry) is True
    got = c.config.get("service-intentions", "prec-db")
    assert [(s["Name"], s["Action"], s["Precedence"]) for s in got["Sources"]] == [
        ("web", "deny", 9), ("*", "allow", 8)]
    assert all(s["Type"] == "consul" for s in got["Sources"])
    wildcard = intentions_entry("*", ("*", "deny"), ("ops", "allow"))
    assert c.config.set("service-intentions", "*", wildcard) is True
    got = c.config.get("service-intentions", "*")
    assert [(s["Name"], s["Precedence"]) for s in got["Sources"]] == [("ops", 6), ("*", 5)]
    c.config.delete("service-intentions", "*")
    c.config.delete("service-intentions", "prec-db")


@pytest.mark.parametrize("entry, needle", [
    ({"Kind": "service-intentions", "Name": "bad", "Sources": [{"Name": "web", "Action": "maybe"}]},
     "Sources[0].Action: must be allow or deny"),
    ({"Kind": "service-intentions", "Name": "bad", "Sources": [{"Action": "allow"}]}, "Sources[0].Name: required"),
    ({"Kind": "service-intentions", "Name": "bad", "Sources": [{"Name": "a", "Action": "allow"},
                                                               {"Name": "a", "Action": "deny"}]},
     "Sources[1].Name: source 'a' is listed twice"),
    ({"Kind": "service-intentions", "Name": "bad", "Sources": [{"Name": "a", "Action": "allow", "Colour": 1}]},
     'invalid config key "Sources[0].Colour"'),
    ({"Kind": "service-intentions", "Name": "bad", "Sources": "web"}, "Sources: must be a list"),
    ({"Kind": "service-defaults", "Name": "bad", "Protocol": "udp"}, "Protocol: must be one of tcp, http, http2, grpc"),
    ({"Kind": "no-such-kind", "Name": "bad"}, "invalid config entry kind: no-such-kind"),
    ({"Name": "bad"}, "Payload does not contain a kind/Kind key"),
    ({"Kind": "service-defaults"}, "Name: config entry name is required"),
    ({"Kind": "proxy-defaults", "Name": "local"}, 'only "global" is supported'),
])
def test_invalid_entries_are_400_naming_the_field(module_agent: RunningAgent, entry: dict[str, Any],
                                                  needle: str) -> None:
    r = requests.put(f"{module_agent.consul_addr}/v1/config", json=entry, timeout=5)
    assert r.status_code == 400, r.text
    assert needle in r.text and len(r.text.strip().splitlines()) == 1
    assert requests.get(f"{module_agent.consul_addr}/v1/config/service-intentions/bad", timeout=5).status_code == 404


def test_malformed_json_and_huge_body(module_agent: RunningAgent) -> None:
    r = requests.put(f"{module_agent.consul_addr}/v1/config", data=b"{\"Kind\": ", timeout=5)
    assert r.status_code == 400 and r.text.startswith("Request decode failed")
    huge = b'{"Kind": "service-defaults", "Name": "huge", "Meta": {"x": "' + b"a" * (9 * 1024 * 1024) + b'"}}'
    r = requests.put(f"{module_agent.consul_addr}/v1/config", data=huge, timeout=30)
    assert r.status_code == 413
    assert requests.get(f"{module_agent.consul_addr}/v1/config/service-defaults/huge", timeout=5).status_code == 404


def test_l7_permissions_need_an_http_protocol(c: consul.Consul, module_agent: RunningAgent) -> None:
    l7 = {"Kind": "service-intentions", "Name": "l7-api",
          "Sources": [{"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/v1"}}]}]}
    r = requests.put(f"{module_agent.consul_addr}/v1/config", json=l7, timeout=5)
    assert r.status_code == 400
    assert r.text.strip() == 'service "l7-api" has protocol "tcp", which is incompatible with L7 intentions permissions'
    assert c.config.set("service-defaults", "l7-api", {"Kind": "service-defaults", "Name": "l7-api",
                                                       "Protocol": "http"}) is True
    assert c.config.set("service-intentions", "l7-api", l7) is True
    got = c.config.get("service-intentions", "l7-api")
    assert got["Sources"][0]["Permissions"][0]["HTTP"] == {"PathPrefix": "/v1"}
    assert "Action" not in got["Sources"][0]
    # and the protocol can no longer be taken back to tcp while the L7 intention exists
    r = requests.put(f"{module_agent.consul_addr}/v1/config",
                     json={"Kind": "service-defaults", "Name": "l7-api", "Protocol": "tcp"}, timeout=5)
    assert r.status_code == 400 and "incompatible with L7 intentions permissions" in r.text
    assert c.config.get("service-defaults", "l7-api")["Protocol"] == "http"
    c.config.delete("service-intentions", "l7-api")
    c.config.delete("service-defaults", "l7-api")


def test_twenty_concurrent_cas_writers_all_land(c: consul.Consul, module_agent: RunningAgent) -> None:
    name = "contended"
    errors: list[BaseException] = []
    conflicts = [0]
    lock = threading.Lock()
    start_together = threading.Barrier(20)

    def writer(i: int) -> None:
        client = consul.Consul(host="127.0.0.1", port=module_agent.consul_port)
        try:
            start_together.wait(timeout=30)  # all read the same version first: a real race
            for _ in range(200):
                current = client.config.get("service-intentions", name)
                sources = list(current["Sources"]) if current else []
                sources = [s for s in sources if s["Name"] != f"svc-{i}"] + [{"Name": f"svc-{i}", "Action": "allow"}]
                entry = {"Kind": "service-intentions", "Name": name, "Sources": sources}
                if client.config.set("service-intentions", name, entry,
                                     cas=current["ModifyIndex"] if current else 0):
                    return
                with lock:
                    conflicts[0] += 1
            raise AssertionError(f"writer {i} never landed")
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    got = c.config.get("service-intentions", name)
    assert sorted(s["Name"] for s in got["Sources"]) == sorted(f"svc-{i}" for i in range(20))
    assert conflicts[0] > 0  # the writers really raced: some CAS attempts lost and retried
    c.config.delete("service-intentions", name)
