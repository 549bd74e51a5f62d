"""Consul's user events, network coordinates and operator endpoints (autopilot, raft peers, keyring,
usage) on the dev agent, over real HTTP with py-consul where it covers them. One agent for the
module; each test uses names of its own."""
from __future__ import annotations

import threading

import consul
import pytest
import requests

from support.agents import RunningAgent


@pytest.fixture(scope="module")
def c(module_agent: RunningAgent) -> consul.Consul:
    return consul.Consul(host="127.0.0.1", port=module_agent.consul_port)


def node_name(c: consul.Consul) -> str:
    return str(c.agent.self()["Config"]["NodeName"])


# --- events ---------------------------------------------------------------------------------------

def test_fired_events_are_listed_by_name_with_consuls_index(module_agent: RunningAgent, c: consul.Consul) -> None:
    fired = requests.put(f"{module_agent.consul_addr}/v1/event/fire/ev-deploy", data=b"v2", timeout=10).json()
    assert fired["Name"] == "ev-deploy" and fired["Payload"] == "djI=" and fired["Version"] == 1
    listed = requests.get(f"{module_agent.consul_addr}/v1/event/list", params={"name": "ev-deploy"}, timeout=10)
    (event,) = listed.json()
    assert event["ID"] == fired["ID"] and event["LTime"] >= 1
    digits = fired["ID"].replace("-", "")
    assert int(listed.headers["X-Consul-Index"]) == int(digits[:16], 16) ^ int(digits[16:], 16)
    _, none = c.event.list(name="ev-nothing")
    assert none == []


def test_a_blocking_list_returns_when_an_event_is_fired(module_agent: RunningAgent, c: consul.Consul) -> None:
    c.event.fire("ev-block", "1")
    index, _ = c.event.list(name="ev-block")
    answered: list[list[dict[str, object]]] = []
    waiter = threading.Thread(target=lambda: answered.append(c.event.list(name="ev-block", index=index)[1]))
    waiter.start()
    c.event.fire("ev-block", "2")
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert [e["Payload"] for e in answered[0]] == [b"1", b"2"]


def test_filters_select_whether_this_agent_keeps_the_event(module_agent: RunningAgent, c: consul.Consul) -> None:
    c.agent.service.register("ev-web", service_id="ev-web-1", tags=["blue"])
    try:
        c.event.fire("ev-f1", "", node=f"^{node_name(c)}$")
        c.event.fire("ev-f2", "", node="^no-such-node$")
        c.event.fire("ev-f3", "", service="^ev-web", tag="^blue$")
        c.event.fire("ev-f4", "", service="^ev-web", tag="^green$")
        kept = {e["Name"] for e in c.event.list()[1] if e["Name"].startswith("ev-f")}
        assert kept == {"ev-f1", "ev-f3"}
    finally:
        c.agent.service.deregister("ev-web-1")
    base = f"{module_agent.consul_addr}/v1/event/fire"
    tag_only = requests.put(f"{base}/ev-bad", params={"tag": "x"}, timeout=10)
    assert (tag_only.status_code, tag_only.text.strip()) == (500, "Cannot provide tag filter without service filter")
    assert requests.put(f"{base}/", timeout=10).text.strip() == "Missing name"


# --- coordinates ----------------------------------------------------------------------------------

def test_coordinates_of_the_one_node_and_updates(c: consul.Consul) -> None:
    node = node_name(c)
    (dc,) = c.coordinate.datacenters()
    assert (dc["Datacenter"], dc["AreaID"]) == ("dc1", "wan")
    assert [x["Node"] for x in dc["Coordinates"]] == [f"{node}.dc1"]  # the WAN member's name
    assert node in [x["Node"] for x in c.coordinate.nodes()[1]]
    coord = {"Adjustment": 0.1, "Error": 0.5, "Height": 0.001, "Vec": [0.1, 0, 0, 0, 0, 0, 0, 0.2]}
    assert c.coordinate.update(node, coord) is True
    _, (entry,) = c.coordinate.node(node)
    assert entry["Node"] == node and entry["Coord"]["Vec"] == coord["Vec"] and entry["Coord"]["Error"] == 0.5
    # a node the catalog does not know: dropped silently, as Consul's state store does
    assert c.coordinate.update("no-such-node", coord) is True
    assert c.coordinate.node("no-such-node")[1] is None
    with pytest.raises(consul.ConsulException, match="incompatible coordinate"):
        c.coordinate.update(node, dict(coord, Vec=[0, 0]))


# --- operator -------------------------------------------------------------------------------------

def test_autopilot_configuration_with_cas(c: consul.Consul) -> None:
    config = c.operator.autopilot_configuration()
    assert config["CleanupDeadServers"] is True and config["LastContactThreshold"] == "200ms"
    assert c.operator.update_autopilot_configuration(cleanup_dead_servers=False,
                                                     cas=config["ModifyIndex"] + 1000) is False
    assert c.operator.autopilot_configuration()["CleanupDeadServers"] is True
    assert c.operator.update_autopilot_configuration(cleanup_dead_servers=False, max_trailing_logs=10) is True
    updated = c.operator.autopilot_configuration()
    assert (updated["CleanupDeadServers"], updated["MaxTrailingLogs"]) == (False, 10)
    assert updated["ServerStabilizationTime"] == "0s"  # a PUT replaces the whole configuration, as Consul's
    assert c.operator.update_autopilot_configuration(cleanup_dead_servers=True, last_contact_threshold="1s",
                                                     cas=updated["ModifyIndex"]) is True
    assert c.operator.autopilot_configuration()["LastContactThreshold"] == "1s"


def test_autopilot_health_and_state(module_agent: RunningAgent, c: consul.Consul) -> None:
    health = c.operator.autopilot_health()
    assert health["Healthy"] is True
    (server,) = health["Servers"]
    assert server["Leader"] and server["Voter"] and server["Healthy"] and server["Name"] == node_name(c)
    state = requests.get(f"{module_agent.consul_addr}/v1/operator/autopilot/state", timeout=10).json()
    assert state["Leader"] == server["ID"] and state["Voters"] == [server["ID"]]
    assert state["Servers"][server["ID"]]["Status"] == "leader"


def test_raft_peer_changes_fail_on_the_only_server(c: consul.Consul) -> None:
    with pytest.raises(consul.ConsulException, match=r'address "10\.255\.255\.1:8300" was not found'):
        c.operator.raft_remove_peer(address="10.255.255.1:8300")
    with pytest.raises(consul.ConsulException, match="was not found in the Raft configuration"):
        c.operator.raft_remove_peer(peer_id="00000000-0000-0000-0000-000000000099")
    with pytest.raises(consul.ConsulException, match="cannot find peer"):
        c.operator.raft_transfer_leader()


def test_keyring_without_gossip_encryption_fails_as_consul_does(module_agent: RunningAgent) -> None:
    url = f"{module_agent.consul_addr}/v1/operator/keyring"
    listed = requests.get(url, timeout=10)
    assert listed.status_code == 500
    assert "Keyring is empty (encryption not enabled)" in listed.text
    key = {"Key": "8CooQRX1+VK7MsQQK6lx2LhumpSfQzUjE63HdAu2hgA="}
    for method in ("POST", "PUT", "DELETE"):
        changed = requests.request(method, url, json=key, timeout=10)
        assert changed.status_code == 500 and "No keyring to modify (encryption not enabled)" in changed.text


def test_usage_counts_nodes_and_services(c: consul.Consul) -> None:
    c.agent.service.register("usage-svc", service_id="usage-svc-1")
    try:
        usage = c.operator.usage()
        figures = usage["Usage"]["dc1"]
        assert figures["Nodes"] >= 1 and usage["KnownLeader"] is True
        assert figures["ServiceInstances"] >= 1 and figures["BillableServiceInstances"] >= 1
        assert set(figures["ConnectServiceInstances"]) >= {"connect-proxy", "ingress-gateway", "mesh-gateway"}
    finally:
        c.agent.service.deregister("usage-svc-1")
