"""Consul's /v1/txn on the dev agent, over real HTTP with py-consul: KV verbs, check-index and cas,
the whole transaction rolled back when one operation fails (Consul's 409 body with every error),
Consul's limits and texts. One agent for the module; each test uses keys of its own."""
from __future__ import annotations

import base64
from typing import Any

import consul
import pytest
import requests

from support.agents import RunningAgent


@pytest.fixture(scope="module")
def c(module_agent: RunningAgent) -> consul.Consul:
    return consul.Consul(host="127.0.0.1", port=module_agent.consul_port)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def kv(verb: str, key: str, **fields: Any) -> dict[str, Any]:
    return {"KV": {"Verb": verb, "Key": key, **fields}}


def put_txn(agent: RunningAgent, ops: Any) -> requests.Response:
    return requests.put(f"{agent.consul_addr}/v1/txn", json=ops, timeout=10)


def test_set_then_get_returns_the_value_only_for_get(c: consul.Consul) -> None:
    done = c.txn.put([kv("set", "txn/a", Value=b64("1"), Flags=7), kv("set", "txn/b", Value=b64("2"))])
    assert done["Errors"] is None
    assert [r["KV"]["Key"] for r in done["Results"]] == ["txn/a", "txn/b"]
    assert all(r["KV"]["Value"] is None for r in done["Results"])
    assert done["Results"][0]["KV"]["Flags"] == 7
    got = c.txn.put([kv("get", "txn/a"), kv("get-tree", "txn/")])
    assert [r["KV"]["Value"] for r in got["Results"]] == [b64("1"), b64("1"), b64("2")]
    _, entry = c.kv.get("txn/b")
    assert entry["Value"] == b"2"


def test_a_failed_operation_rolls_back_the_whole_transaction(module_agent: RunningAgent, c: consul.Consul) -> None:
    c.kv.put("txn/rb", "old")
    _, entry = c.kv.get("txn/rb")
    resp = put_txn(module_agent, [kv("set", "txn/rb", Value=b64("new")), kv("delete", "txn/rb-other"),
                                  kv("cas", "txn/rb", Value=b64("x"), Index=entry["ModifyIndex"]),
                                  kv("get", "txn/missing")])
    assert resp.status_code == 409
    assert resp.json() == {"Results": None, "Errors": [
        # the set of op 0 moved the index, so op 2's cas is stale; op 3 reads a key that is not there
        {"OpIndex": 2, "What": 'failed to set key "txn/rb", index is stale'},
        {"OpIndex": 3, "What": 'key "txn/missing" doesn\'t exist'}]}
    _, after = c.kv.get("txn/rb")
    assert after["Value"] == b"old" and after["ModifyIndex"] == entry["ModifyIndex"]


def test_check_index_and_cas(module_agent: RunningAgent, c: consul.Consul) -> None:
    c.kv.put("txn/ci", "v")
    _, entry = c.kv.get("txn/ci")
    index = entry["ModifyIndex"]
    stale = put_txn(module_agent, [kv("check-index", "txn/ci", Index=index + 1), kv("set", "txn/ci2", Value=b64("y"))])
    assert stale.status_code == 409
    assert stale.json()["Errors"] == [
        {"OpIndex": 0, "What": f'failed index check for key "txn/ci", current modify index {index} != {index + 1}'}]
    assert c.kv.get("txn/ci2")[1] is None
    ok = c.txn.put([kv("check-index", "txn/ci", Index=index), kv("cas", "txn/ci", Value=b64("w"), Index=index),
                    kv("check-not-exists", "txn/none"), kv("cas", "txn/new", Value=b64("n"), Index=0)])
    assert ok["Errors"] is None
    assert [r["KV"]["Key"] for r in ok["Results"]] == ["txn/ci", "txn/ci", "txn/new"]
    assert c.kv.get("txn/ci")[1]["Value"] == b"w"
    assert c.kv.get("txn/new")[1]["Value"] == b"n"


def test_delete_verbs(module_agent: RunningAgent, c: consul.Consul) -> None:
    for key in ("txn/d/1", "txn/d/2", "txn/dc"):
        c.kv.put(key, "x")
    _, entry = c.kv.get("txn/dc")
    stale = put_txn(module_agent, [kv("delete-cas", "txn/dc", Index=entry["ModifyIndex"] + 5)])
    assert stale.status_code == 409
    assert stale.json()["Errors"] == [{"OpIndex": 0, "What": 'failed to delete key "txn/dc", index is stale'}]
    done = c.txn.put([kv("delete-tree", "txn/d/"), kv("delete-cas", "txn/dc", Index=entry["ModifyIndex"])])
    assert done == {"Results": [], "Errors": None}
    assert c.kv.get("txn/d/", recurse=True)[1] is None and c.kv.get("txn/dc")[1] is None


def test_lock_and_unlock_with_a_session(module_agent: RunningAgent, c: consul.Consul) -> None:
    session = c.session.create(behavior="delete", ttl=60)
    try:
        done = c.txn.put([kv("lock", "txn/lock", Value=b64("me"), Session=session)])
        assert done["Results"][0]["KV"]["Session"] == session and done["Results"][0]["KV"]["LockIndex"] == 1
        other = put_txn(module_agent, [kv("unlock", "txn/lock", Session="00000000-0000-0000-0000-000000000000")])
        assert other.status_code == 409
        assert other.json()["Errors"][0]["What"] == (
            'failed to unlock key "txn/lock", lock isn\'t held, or is held by another session')
        check = put_txn(module_agent, [kv("check-session", "txn/lock", Session="nope")])
        assert check.json()["Errors"][0]["What"] == (
            f'failed session check for key "txn/lock", current session "{session}" != "nope"')
        assert c.txn.put([kv("unlock", "txn/lock", Session=session)])["Errors"] is None
        assert "Session" not in c.kv.get("txn/lock")[1]
    finally:
        c.session.destroy(session)


def test_consul_limits_and_decode_errors(module_agent: RunningAgent) -> None:
    too_many = put_txn(module_agent, [kv("get", f"txn/k{i}") for i in range(65)])
    assert (too_many.status_code, too_many.text.strip()) == (413, "Transaction contains too many operations (65 > 64)")
    not_a_list = put_txn(module_agent, {"KV": {}})
    assert not_a_list.status_code == 400 and not_a_list.text.startswith("Failed to parse body: ")
    unknown = put_txn(module_agent, [kv("frobnicate", "txn/x")])
    assert unknown.status_code == 409
    assert unknown.json()["Errors"] == [{"OpIndex": 0, "What": 'unknown KV verb "frobnicate"'}]
    node_op = put_txn(module_agent, [{"Node": {"Verb": "get", "Node": {"Node": "n"}}}])
    assert node_op.status_code == 409  # refused, never ignored
