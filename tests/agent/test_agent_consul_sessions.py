"""Consul sessions and KV locks on the dev agent over real HTTP (py-consul): create/info/list/node/
renew/destroy, KV ?acquire= / ?release= with LockIndex and Session as Consul sets them, lock delay,
behavior release vs delete, sessions ended by a critical check, and Consul's refusals."""
from __future__ import annotations

from pathlib import Path

import consul
import pytest
import requests

from nomadmesh.agent.consul.sessions import SessionError, Sessions
from nomadmesh.agent.context import AgentConfig, AgentContext
from support.agents import RunningAgent
from support.waiting import wait_until


@pytest.fixture
def c(module_agent: RunningAgent) -> consul.Consul:
    return consul.Consul(host="127.0.0.1", port=module_agent.consul_port)


def _put(agent: RunningAgent, path: str, body: object = None) -> requests.Response:
    return requests.put(f"http://127.0.0.1:{agent.consul_port}{path}", json=body, timeout=10)


def test_create_defaults_info_list_node_destroy(c: consul.Consul) -> None:
    node = c.agent.self()["Config"]["NodeName"]
    sid = c.session.create(name="defaults")
    _, info = c.session.info(sid)
    assert info["ID"] == sid and info["Name"] == "defaults" and info["Node"] == node
    assert info["Behavior"] == "release" and info["TTL"] == "" and info["LockDelay"] == 15 * 10**9
    assert info["NodeChecks"] == ["serfHealth"]
    assert sid in [s["ID"] for s in c.session.list()[1]]
    assert sid in [s["ID"] for s in c.session.node(node)[1]]
    assert c.session.node("no-such-node")[1] == []
    assert c.session.destroy(sid) is True
    assert c.session.info(sid)[1] is None
    assert c.session.destroy(sid) is True  # Consul: destroying an unknown session is not an error


def test_lowercase_fields_and_numeric_lock_delay(module_agent: RunningAgent, c: consul.Consul) -> None:
    sid = c.session.create(name="lc", lock_delay=3, behavior="delete", ttl=30)
    _, info = c.session.info(sid)
    assert (info["LockDelay"], info["Behavior"], info["TTL"]) == (3 * 10**9, "delete", "30s")
    resp = _put(module_agent, "/v1/session/create", {"LockDelay": 2})  # a small number means seconds
    assert resp.status_code == 200
    assert c.session.info(resp.json()["ID"])[1]["LockDelay"] == 2 * 10**9
    for s in (sid, resp.json()["ID"]):
        c.session.destroy(s)


@pytest.mark.parametrize(("body", "message"), [
    ({"Behavior": "qqq"}, "Invalid Behavior setting 'qqq'"),
    ({"TTL": "5s"}, "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"),
    ({"TTL": "25h"}, "Invalid Session TTL '90000000000000', must be between [10s=24h0m0s]"),
    ({"TTL": "soon"}, "Session TTL 'soon' invalid"),
    ({"Checks": ["no-such-check"]}, "Missing check 'no-such-check' registration"),
    ({"Node": "no-such-node"}, "Missing node registration"),
])
def test_create_refusals(module_agent: RunningAgent, body: dict[str, object], message: str) -> None:
    before = len(requests.get(f"http://127.0.0.1:{module_agent.consul_port}/v1/session/list", timeout=10).json())
    resp = _put(module_agent, "/v1/session/create", body)
    assert resp.status_code == 500 and message in resp.text
    after = len(requests.get(f"http://127.0.0.1:{module_agent.consul_port}/v1/session/list", timeout=10).json())
    assert after == before


def test_create_refuses_a_critical_check_and_bad_json(module_agent: RunningAgent, c: consul.Consul) -> None:
    c.agent.service.register("sess-ttl", service_id="sess-ttl", check=consul.Check.ttl("30s"))
    try:
        resp = _put(module_agent, "/v1/session/create", {"Checks": ["serfHealth", "service:sess-ttl"]})
        assert resp.status_code == 500 and "Check 'service:sess-ttl' is in critical state" in resp.text
    finally:
        c.agent.service.deregister("sess-ttl")
    bad = requests.put(f"http://127.0.0.1:{module_agent.consul_port}/v1/session/create", data=b"{", timeout=10)
    assert bad.status_code == 400 and "Request decode failed" in bad.text


def test_renew(module_agent: RunningAgent, c: consul.Consul) -> None:
    sid = c.session.create(ttl=15)
    renewed = c.session.renew(sid)
    assert renewed["ID"] == sid and renewed["TTL"] == "15s"
    c.session.destroy(sid)
    resp = _put(module_agent, f"/v1/session/renew/{sid}")
    assert resp.status_code == 404 and f"Session id '{sid}' not found" in resp.text


def test_acquire_release_lock_index_and_session(c: consul.Consul) -> None:
    s1, s2 = c.session.create(lock_delay=0), c.session.create(lock_delay=0)
    try:
        assert c.kv.put("locks/a", "one", acquire=s1) is True
        item = c.kv.get("locks/a")[1]
        assert (item["LockIndex"], item["Session"], item["Value"]) == (1, s1, b"one")
        assert c.kv.put("locks/a", "two", acquire=s2) is False  # held by s1
        assert c.kv.put("locks/a", "again", acquire=s1) is True  # the holder may write again
        item = c.kv.get("locks/a")[1]
        assert (item["LockIndex"], item["Session"], item["Value"]) == (1, s1, b"again")
        assert c.kv.put("locks/a", "x", release=s2) is False  # not the holder
        assert c.kv.put("locks/a", "free", release=s1) is True
        item = c.kv.get("locks/a")[1]
        assert item["LockIndex"] == 1 and "Session" not in item and item["Value"] == b"free"
        assert c.kv.put("locks/a", "mine", acquire=s2) is True
        item = c.kv.get("locks/a")[1]
        assert (item["LockIndex"], item["Session"]) == (2, s2)
        assert c.kv.put("locks/a", "plain") is True  # a plain write keeps the lock
        assert c.kv.get("locks/a")[1]["Session"] == s2
        assert c.kv.put("locks/missing", "x", release=s1) is False
    finally:
        c.session.destroy(s1)
        c.session.destroy(s2)
        c.kv.delete("locks/", recurse=True)


def test_acquire_with_unknown_session_is_an_error(module_agent: RunningAgent, c: consul.Consul) -> None:
    resp = _put(module_agent, "/v1/kv/locks/u?acquire=00000000-0000-0000-0000-000000000000")
    assert resp.status_code == 500 and 'invalid session "00000000-0000-0000-0000-000000000000"' in resp.text
    assert c.kv.get("locks/u")[1] is None
    # Consul prints the session with Go's %#v: a hostile one stays on one escaped line (the fuzz test
    # once got a raw carriage return back, which split the message in two).
    resp = _put(module_agent, "/v1/kv/locks/u?acquire=%0D%0Ax%22")
    assert (resp.status_code, resp.text.rstrip("\n")) == (500, 'invalid session "\\r\\nx\\""')


def test_destroy_releases_or_deletes_and_lock_delay_holds(c: consul.Consul) -> None:
    releasing = c.session.create(lock_delay=0)
    deleting = c.session.create(behavior="delete", lock_delay=0)
    delayed = c.session.create(lock_delay=60)
    other = c.session.create(lock_delay=0)
    try:
        assert c.kv.put("locks/r", "r", acquire=releasing) and c.kv.put("locks/d", "d", acquire=deleting)
        assert c.kv.put("locks/l", "l", acquire=delayed)
        c.session.destroy(releasing)
        c.session.destroy(deleting)
        c.session.destroy(delayed)
        item = c.kv.get("locks/r")[1]
        assert item["Value"] == b"r" and "Session" not in item and item["LockIndex"] == 1
        assert c.kv.get("locks/d")[1] is None
        assert c.kv.put("locks/r", "o", acquire=other) is True  # no lock delay on that one
        assert c.kv.put("locks/l", "o", acquire=other) is False  # within the 60 s lock delay
    finally:
        c.session.destroy(other)
        c.kv.delete("locks/", recurse=True)


def test_blocking_info_wakes_on_destroy(c: consul.Consul) -> None:
    sid = c.session.create()
    index, _ = c.session.info(sid)
    c.session.destroy(sid)
    new_index, info = c.session.info(sid, index=index, wait="5s")
    assert info is None and int(new_index) > int(index)


def test_critical_check_ends_the_session_and_releases(c: consul.Consul) -> None:
    c.agent.service.register("sess-chk", service_id="sess-chk", check=consul.Check.ttl("60s"))
    try:
        c.agent.check.ttl_pass("service:sess-chk")
        sid = c.session.create(checks=["serfHealth", "service:sess-chk"], lock_delay=0)
        assert c.kv.put("locks/c", "c", acquire=sid) is True
        c.agent.check.ttl_fail("service:sess-chk")
        assert c.session.info(sid)[1] is None
        assert "Session" not in c.kv.get("locks/c")[1]
    finally:
        c.agent.service.deregister("sess-chk")
        c.kv.delete("locks/", recurse=True)


def test_ttl_expiry_releases_after_twice_the_ttl(tmp_path: Path) -> None:
    """The TTL timer on a real State; session_ttl_min lowered, as Consul's config allows, to keep it short."""
    ctx = AgentContext.open(AgentConfig(data_dir=tmp_path, node_name="n1"))
    sessions = Sessions(ctx, lambda n: n == "n1", lambda node, check: "passing", ttl_min_s=0.2)
    try:
        with pytest.raises(SessionError, match=r"must be between \[200ms=24h0m0s\]"):
            sessions.create({"TTL": "0.1s"})
        sid = sessions.create({"TTL": "0.3s", "LockDelay": 0})
        with ctx.state.write() as txn:
            assert sessions.acquire(txn, "k", sid, {"Flags": 0, "Value": None})
        wait_until(lambda: sessions.get(sid) is None, timeout=10, what="the session to expire")
        rec = ctx.state.get("kv", "k")
        assert rec is not None and "Session" not in rec.value
    finally:
        sessions.stop()
        ctx.close()


def test_deregistering_a_bound_check_ends_the_session(c: consul.Consul) -> None:
    c.agent.service.register("sess-gone", service_id="sess-gone", check=consul.Check.ttl("60s"))
    c.agent.check.ttl_pass("service:sess-gone")
    sid = c.session.create(checks=["serfHealth", "service:sess-gone"], lock_delay=0)
    try:
        assert c.kv.put("locks/g", "g", acquire=sid) is True
        c.agent.service.deregister("sess-gone")
        assert c.session.info(sid)[1] is None
        assert "Session" not in c.kv.get("locks/g")[1]
    finally:
        c.session.destroy(sid)
        c.kv.delete("locks/", recurse=True)


def test_release_wins_over_acquire_as_in_consul(module_agent: RunningAgent, c: consul.Consul) -> None:
    sid = c.session.create(lock_delay=0)
    try:
        assert c.kv.put("locks/both", "x", acquire=sid) is True
        resp = _put(module_agent, f"/v1/kv/locks/both?acquire={sid}&release={sid}")
        assert resp.json() is True and "Session" not in c.kv.get("locks/both")[1]
    finally:
        c.session.destroy(sid)
        c.kv.delete("locks/", recurse=True)


def test_another_datacenter_is_no_path(module_agent: RunningAgent, c: consul.Consul) -> None:
    """py-consul's own suite expects `dc="dc2"` to fail on every server-side read and write."""
    for call in (lambda: c.session.create(dc="dc2"), lambda: c.session.list(dc="dc2"),
                 lambda: c.kv.get("x", dc="dc2"), lambda: c.catalog.service("x", dc="dc2"),
                 lambda: c.health.service("x", dc="dc2")):
        with pytest.raises(consul.ConsulException, match="No path to datacenter"):
            call()
    assert c.session.list(dc="dc1")[1] is not None  # its own datacenter by name is fine


def test_session_on_a_registered_node_ends_with_it(module_agent: RunningAgent, c: consul.Consul) -> None:
    assert c.catalog.register("sess-ext-node", "10.30.0.1", check={"CheckID": "up", "Status": "passing"})
    try:
        sid = c.session.create(node="sess-ext-node", checks=["up"], lock_delay=0)
        assert c.session.node("sess-ext-node")[1][0]["ID"] == sid
        assert c.kv.put("locks/ext", "x", acquire=sid) is True
        c.catalog.deregister("sess-ext-node")
        assert c.session.info(sid)[1] is None
        assert "Session" not in c.kv.get("locks/ext")[1]
    finally:
        c.catalog.deregister("sess-ext-node")
        c.kv.delete("locks/", recurse=True)
