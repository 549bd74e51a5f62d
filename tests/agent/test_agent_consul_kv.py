"""Consul KV on the dev agent over real HTTP (py-consul): get/put/delete, recurse, keys+separator,
raw, flags, cas; and bad input (path traversal, leading '/', huge values, bad cas) refused with
Consul's status codes while the store stays as it was."""
from __future__ import annotations

import http.client
import json

import consul
import pytest
import requests

from support.agents import RunningAgent


@pytest.fixture
def c(module_agent: RunningAgent) -> consul.Consul:
    return consul.Consul(host="127.0.0.1", port=module_agent.consul_port)


def raw_request(agent: RunningAgent, method: str, path: str, body: bytes | None = None) -> tuple[int, str]:
    """http.client sends the path exactly as written (requests would remove dot segments)."""
    conn = http.client.HTTPConnection("127.0.0.1", agent.consul_port, timeout=10)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def test_put_get_delete_roundtrip(c: consul.Consul) -> None:
    assert c.kv.put("rt/key", "value", flags=42) is True
    index, item = c.kv.get("rt/key")
    assert item["Key"] == "rt/key" and item["Value"] == b"value" and item["Flags"] == 42
    assert item["CreateIndex"] == item["ModifyIndex"] and int(index) >= item["ModifyIndex"]
    assert c.kv.put("rt/key", "v2") is True
    _, again = c.kv.get("rt/key")
    assert again["Value"] == b"v2" and again["CreateIndex"] == item["CreateIndex"]
    assert again["ModifyIndex"] > item["ModifyIndex"]
    assert c.kv.delete("rt/key") is True
    index, missing = c.kv.get("rt/key")
    assert missing is None and int(index) > 0


def test_empty_value_is_null(c: consul.Consul) -> None:
    assert c.kv.put("empty/key", b"") is True
    assert c.kv.get("empty/key")[1]["Value"] is None


def test_recurse_keys_separator_and_raw(c: consul.Consul, module_agent: RunningAgent) -> None:
    for key in ("tree/a", "tree/b/1", "tree/b/2", "tree/c/d/e", "treehouse"):
        c.kv.put(key, key.upper())
    _, items = c.kv.get("tree/", recurse=True)
    assert [i["Key"] for i in items] == ["tree/a", "tree/b/1", "tree/b/2", "tree/c/d/e"]
    assert items[0]["Value"] == b"TREE/A"
    assert c.kv.get("tree/", keys=True)[1] == ["tree/a", "tree/b/1", "tree/b/2", "tree/c/d/e"]
    assert c.kv.get("tree/", keys=True, separator="/")[1] == ["tree/a", "tree/b/", "tree/c/"]
    assert c.kv.get("tree", keys=True, separator="/")[1] == ["tree/", "treehouse"]
    raw = requests.get(f"{module_agent.consul_addr}/v1/kv/tree/b/1?raw", timeout=5)
    assert raw.status_code == 200 and raw.content == b"TREE/B/1"
    assert c.kv.get("nothing/", recurse=True)[1] is None
    assert c.kv.delete("tree/", recurse=True) is True
    assert c.kv.get("tree/", recurse=True)[1] is None
    assert c.kv.get("treehouse")[1]["Value"] == b"TREEHOUSE"


def test_cas_put_and_delete(c: consul.Consul) -> None:
    assert c.kv.put("cas/key", "one", cas=0) is True
    assert c.kv.put("cas/key", "two", cas=0) is False  # must not exist any more
    _, item = c.kv.get("cas/key")
    assert c.kv.put("cas/key", "two", cas=item["ModifyIndex"] + 1000) is False
    assert c.kv.get("cas/key")[1]["Value"] == b"one"
    assert c.kv.put("cas/key", "two", cas=item["ModifyIndex"]) is True
    _, item2 = c.kv.get("cas/key")
    assert c.kv.delete("cas/key", cas=item["ModifyIndex"]) is False  # stale
    assert c.kv.get("cas/key")[1]["Value"] == b"two"
    assert c.kv.delete("cas/key", cas=item2["ModifyIndex"]) is True
    assert c.kv.get("cas/key")[1] is None


def test_binary_value_round_trips(c: consul.Consul, module_agent: RunningAgent) -> None:
    blob = bytes(range(256))
    assert c.kv.put("bin/blob", blob) is True
    assert c.kv.get("bin/blob")[1]["Value"] == blob
    assert requests.get(f"{module_agent.consul_addr}/v1/kv/bin/blob?raw=true", timeout=5).content == blob


@pytest.mark.parametrize("path", ["/v1/kv/a/../b", "/v1/kv/../etc/passwd", "/v1/kv/a/./b", "/v1/kv//lead",
                                  "/v1/kv/a/%2E%2E/b"])
def test_traversal_and_leading_slash_are_refused(module_agent: RunningAgent, c: consul.Consul, path: str) -> None:
    before = c.kv.get("", keys=True)[1]
    status, text = raw_request(module_agent, "PUT", path, b"x")
    assert status == 400
    assert "Invalid key" in text and len(text.strip().splitlines()) == 1
    assert raw_request(module_agent, "GET", path)[0] == 400
    assert c.kv.get("", keys=True)[1] == before


def test_value_over_512k_is_413_and_nothing_is_written(module_agent: RunningAgent, c: consul.Consul) -> None:
    r = requests.put(f"{module_agent.consul_addr}/v1/kv/big/value", data=b"x" * (512 * 1024 + 1), timeout=10)
    assert r.status_code == 413
    assert "too large" in r.text
    assert c.kv.get("big/value")[1] is None
    ok = requests.put(f"{module_agent.consul_addr}/v1/kv/big/value", data=b"x" * (512 * 1024), timeout=10)
    assert ok.json() is True


@pytest.mark.parametrize("query, needle", [("cas=abc", "Invalid cas value"), ("cas=-1", "Invalid cas value"),
                                           ("flags=x", "Invalid flags value")])
def test_bad_query_values_are_400(module_agent: RunningAgent, c: consul.Consul, query: str, needle: str) -> None:
    r = requests.put(f"{module_agent.consul_addr}/v1/kv/badq?{query}", data=b"v", timeout=5)
    assert r.status_code == 400 and needle in r.text
    assert c.kv.get("badq")[1] is None


def test_missing_key_name_is_400(module_agent: RunningAgent) -> None:
    r = requests.put(f"{module_agent.consul_addr}/v1/kv/", data=b"v", timeout=5)
    assert r.status_code == 400 and r.text.strip() == "Missing key name"


def test_404_carries_the_index(module_agent: RunningAgent) -> None:
    r = requests.get(f"{module_agent.consul_addr}/v1/kv/never/there", timeout=5)
    assert r.status_code == 404 and r.text == ""
    assert int(r.headers["X-Consul-Index"]) >= 1
    assert json.loads(requests.get(f"{module_agent.consul_addr}/v1/status/leader", timeout=5).text)
