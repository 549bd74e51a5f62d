"""Consul's agent reload (re-reads --config-dir's service definitions), members and status endpoints,
over real HTTP with py-consul."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import consul
import pytest
import requests

from support.agents import RunningAgent


def _write(conf: Path, name: str, doc: dict[str, object]) -> None:
    (conf / name).write_text(json.dumps(doc))


def test_reload_adds_edits_and_removes_config_dir_services_only(agent_factory: Callable[..., RunningAgent],
                                                                 tmp_path: Path) -> None:
    conf = tmp_path / "consul.d"
    conf.mkdir()
    _write(conf, "order.json", {"service": {"name": "order", "port": 5000}})
    _write(conf, "tax.json", {"service": {"name": "tax", "port": 5002, "connect": {"sidecar_service": {}}}})
    agent = agent_factory("--config-dir", str(conf))
    c = consul.Consul(host="127.0.0.1", port=agent.consul_port)
    c.agent.service.register("api-made", service_id="api-made", port=7000)  # not the directory's: stays
    assert sorted(c.agent.services()) == ["api-made", "order", "tax", "tax-sidecar-proxy"]

    _write(conf, "order.json", {"service": {"name": "order", "port": 5100, "tags": ["v2"]}})
    (conf / "tax.json").unlink()
    _write(conf, "more.json", {"services": [{"name": "invoice", "port": 5001}]})
    assert c.agent.reload() is True

    services = c.agent.services()
    assert sorted(services) == ["api-made", "invoice", "order"]  # tax and its sidecar are gone
    assert (services["order"]["Port"], services["order"]["Tags"]) == (5100, ["v2"])


def test_reload_with_a_broken_file_changes_nothing_and_names_it(agent_factory: Callable[..., RunningAgent],
                                                                tmp_path: Path) -> None:
    conf = tmp_path / "consul.d"
    conf.mkdir()
    _write(conf, "order.json", {"service": {"name": "order", "port": 5000}})
    agent = agent_factory("--config-dir", str(conf))
    _write(conf, "order.json", {"service": {"name": "order", "port": 5100}})
    _write(conf, "bad.json", {"service": {"name": "x", "port": "many"}})
    r = requests.put(f"{agent.consul_addr}/v1/agent/reload", timeout=10)
    assert r.status_code == 500
    assert f"Failed to reload configs: {conf / 'bad.json'}: service: Port: must be an integer" in r.text
    services = requests.get(f"{agent.consul_addr}/v1/agent/services", timeout=10).json()
    assert sorted(services) == ["order"] and services["order"]["Port"] == 5000  # the edit was not applied


def test_reload_without_a_config_dir_is_a_no_op(module_agent: RunningAgent) -> None:
    before = requests.get(f"{module_agent.consul_addr}/v1/agent/services", timeout=10).json()
    assert requests.put(f"{module_agent.consul_addr}/v1/agent/reload", timeout=10).status_code == 200
    assert requests.get(f"{module_agent.consul_addr}/v1/agent/services", timeout=10).json() == before
    assert requests.get(f"{module_agent.consul_addr}/v1/agent/reload", timeout=10).status_code == 405


def test_members_lists_the_one_alive_member_lan_and_wan(module_agent: RunningAgent) -> None:
    c = consul.Consul(host="127.0.0.1", port=module_agent.consul_port)
    node = c.agent.self()["Config"]["NodeName"]
    [lan] = c.agent.members()
    assert (lan["Name"], lan["Addr"], lan["Port"], lan["Status"]) == (node, "127.0.0.1", 8301, 1)
    assert lan["Tags"]["dc"] == "dc1" and lan["Tags"]["role"] == "consul"
    assert {"ProtocolMin", "ProtocolMax", "ProtocolCur", "DelegateMin", "DelegateMax", "DelegateCur"} <= set(lan)
    [wan] = c.agent.members(wan=True)
    assert (wan["Name"], wan["Port"]) == (f"{node}.dc1", 8302)


@pytest.mark.parametrize("segment, count", [("", 1), ("_all", 1), ("alpha", 0)])
def test_members_of_a_segment(module_agent: RunningAgent, segment: str, count: int) -> None:
    r = requests.get(f"{module_agent.consul_addr}/v1/agent/members", params={"segment": segment}, timeout=10)
    assert len(r.json()) == count


def test_status_leader_and_peers_name_the_one_server(module_agent: RunningAgent) -> None:
    c = consul.Consul(host="127.0.0.1", port=module_agent.consul_port)
    assert c.status.leader() == "127.0.0.1:8300"
    assert c.status.peers() == ["127.0.0.1:8300"]
