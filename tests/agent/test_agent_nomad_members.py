"""/v1/agent/members, /v1/agent/servers, /v1/agent/join, /v1/agent/force-leave and /v1/status/*
as a Nomad dev agent (one server, its own client) answers them, through python-nomad."""
from __future__ import annotations

import requests

from support.agents import InProcessAgent


def test_members_is_the_one_server_with_nomads_tags(agent: InProcessAgent) -> None:
    out = agent.client.agent.get_members()
    assert (out["ServerName"], out["ServerRegion"], out["ServerDC"]) == ("test-node", "global", "dc1")
    [member] = out["Members"]
    assert member["Name"] == "test-node.global" and member["Status"] == "alive"
    tags = member["Tags"]
    assert tags["role"] == "nomad" and tags["region"] == "global" and tags["dc"] == "dc1"
    assert tags["id"] == agent.client.agent.get_agent()["member"]["Tags"]["id"]
    assert f"{tags['rpc_addr']}:{tags['port']}" == agent.client.status.leader.get_leader()
    assert {"ProtocolCur", "DelegateCur"} <= set(member)


def test_servers_are_the_embedded_server(agent: InProcessAgent) -> None:
    leader = agent.client.status.leader.get_leader()
    assert agent.client.agent.get_servers() == [leader] == agent.client.status.peers.get_peers()
    assert agent.client.agent.update_servers([leader]) == 200
    r = requests.put(f"{agent.addr}/v1/agent/servers", params={"address": "10.1.2.3:4647"}, timeout=10)
    assert r.status_code == 400 and "10.1.2.3:4647" in r.text
    r = requests.put(f"{agent.addr}/v1/agent/servers", timeout=10)
    assert (r.status_code, r.text.strip()) == (400, "missing server address")
    assert agent.client.agent.get_servers() == [leader]


def test_join_and_force_leave(agent: InProcessAgent) -> None:
    out = agent.client.agent.join_agent(["10.1.2.3"])
    assert out["num_joined"] == 0 and "10.1.2.3" in out["error"]
    r = requests.put(f"{agent.addr}/v1/agent/join", timeout=10)
    assert (r.status_code, r.text.strip()) == (400, "missing address to join")
    assert agent.client.agent.force_leave("gone.global") == 200
    r = requests.put(f"{agent.addr}/v1/agent/force-leave", timeout=10)
    assert (r.status_code, r.text.strip()) == (400, "missing node to force leave")
    assert requests.put(f"{agent.addr}/v1/agent/force-leave", params={"node": "test-node.global"},
                        timeout=10).status_code == 500
    assert requests.get(f"{agent.addr}/v1/agent/join", timeout=10).status_code == 405
