"""Small Consul HTTP API calls tests share: register a service with a sidecar, set a TTL check, read who
may call a destination, a sidecar's figures URL, a KV write."""
from __future__ import annotations

import consul
import requests

from support.agents import RunningAgent
from support.net import free_port


def register(agent: RunningAgent, name: str, upstreams: tuple[str, ...] = (), tags: tuple[str, ...] = ()) -> None:
    body = {"Name": name, "Port": free_port(), "Tags": list(tags), "Check": {"TTL": "60s"},
            "Connect": {"SidecarService": {"Proxy": {"Upstreams": [
                {"DestinationName": u, "LocalBindPort": 7000 + i} for i, u in enumerate(upstreams)]}}}}
    requests.put(f"{agent.consul_addr}/v1/agent/service/register", json=body, timeout=5).raise_for_status()


def ttl(agent: RunningAgent, name: str, status: str, note: str) -> None:
    requests.put(f"{agent.consul_addr}/v1/agent/check/{status}/service:{name}", params={"note": note},
                 timeout=5).raise_for_status()


def cclient(agent: RunningAgent) -> consul.Consul:
    return consul.Consul(host="127.0.0.1", port=agent.consul_port)


def sources(agent: RunningAgent, dst: str) -> dict[str, str] | None:
    entry = cclient(agent).config.get("service-intentions", dst)
    return None if entry is None else {s["Name"]: s.get("Action", "l7") for s in entry["Sources"]}


def sidecar_stats_url(agent: RunningAgent, sidecar_id: str) -> str:
    """The dev agent's live Envoy figures of a sidecar it runs."""
    return f"{agent.consul_addr}/v1/nomadmesh/sidecar/{requests.utils.quote(sidecar_id, safe='')}/stats"


def put_kv(agent: RunningAgent, key: str, value: bytes) -> None:
    """PUT one key in the agent's KV store (each write goes through the state's WAL)."""
    requests.put(f"{agent.consul_addr}/v1/kv/{key}", data=value, timeout=5).raise_for_status()
