"""One intention change fanned out to N simulated proxies over ADS. Prints, never asserts.

    .venv/bin/python bench/ads_fanout.py [--proxies 1000] [--rounds 3] [--json]

A dev agent gets N sidecar proxies registered through `PUT /v1/agent/service/register` (Kind
`connect-proxy`, a destination service each, as a Nomad sidecar task registers its proxy), so it
builds and keeps a snapshot for each. N lightweight ADS clients (grpc.aio in this process, not
Envoys; spread over a few HTTP/2 connections) open one stream each on the agent's gRPC port, named
as Envoy names itself to the agent (node id = the proxy's service ID, the bootstrap's `id`), subscribe
CDS and LDS as wildcard and ACK every response as Envoy does (version + nonce).

Once every stream has ACKed its first listeners, each round writes one service-intentions entry
through the HTTP API: destination `*`, source `bench-x` deny (so every proxy's RBAC changes), then
in the next round deletes it. The clock starts before the write is sent and stops, per proxy, when
its client sends the ACK of the new LDS version. Figures over all proxies and rounds: p50/p99/max,
the time to the last proxy (median and max over rounds), how long the write itself took, and the
CPU the agent and this client process spent per round (what the machine had to do).
Consul's default `xds.update_max_per_second` (250) would need N/250 s to reach them all.
"""
from __future__ import annotations

import asyncio
import statistics
import sys
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import requests
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from agentkit import agent_session, bench_main, cpu_seconds, pct, wait_until
from nomadmesh.agent.connect.resources import CLUSTER, LISTENER

CONSUL_DEFAULT_UPDATES_PER_S = 250
STREAMS_PER_CHANNEL = 100
ENTRY = {"Kind": "service-intentions", "Name": "*", "Sources": [{"Name": "bench-x", "Action": "deny"}]}


@dataclass
class Proxies:
    """What every simulated proxy has ACKed: node id -> (LDS version, perf_counter of the ACK)."""

    lds_acked: dict[str, tuple[str, float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


async def one_proxy(stub: ads_pb2_grpc.AggregatedDiscoveryServiceStub, node_id: str, seen: Proxies) -> None:
    outbox: asyncio.Queue[discovery_pb2.DiscoveryRequest] = asyncio.Queue()
    node = base_pb2.Node(id=node_id, cluster=node_id.removesuffix("-sidecar-proxy"))
    for type_url in (CLUSTER, LISTENER):  # wildcard, as Envoy subscribes them
        outbox.put_nowait(discovery_pb2.DiscoveryRequest(node=node, type_url=type_url))

    async def requests_out() -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
        while True:
            req = await outbox.get()
            if req.type_url == LISTENER and req.response_nonce:
                seen.lds_acked[node_id] = (req.version_info, time.perf_counter())  # the ACK leaves now
            yield req

    try:
        async for resp in stub.StreamAggregatedResources(requests_out()):
            outbox.put_nowait(discovery_pb2.DiscoveryRequest(
                type_url=resp.type_url, version_info=resp.version_info, response_nonce=resp.nonce))
    except grpc.aio.AioRpcError as e:
        if e.code() != grpc.StatusCode.CANCELLED:
            seen.errors.append(f"{node_id}: {e.code().name} {e.details()}")


class Fleet:
    """N ADS clients on their own event loop thread; `stop()` cancels every stream."""

    def __init__(self, target: str, node_ids: list[str]) -> None:
        self.seen = Proxies()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ads-fleet", daemon=True)
        self._thread.start()
        self._main = asyncio.run_coroutine_threadsafe(self._run(target, node_ids), self._loop)

    async def _run(self, target: str, node_ids: list[str]) -> None:
        # A local subchannel pool per channel: each channel its own TCP connection, as separate Envoys.
        channels = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(0, len(node_ids), STREAMS_PER_CHANNEL)]
        try:
            stubs = [ads_pb2_grpc.AggregatedDiscoveryServiceStub(ch) for ch in channels]
            await asyncio.gather(*(one_proxy(stubs[i // STREAMS_PER_CHANNEL], nid, self.seen)
                                   for i, nid in enumerate(node_ids)))
        finally:
            for ch in channels:
                await ch.close()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._main.cancel)
        try:
            self._main.result(timeout=10)
        except BaseException:  # cancelled, as asked
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def register_proxies(consul: str, n: int) -> list[str]:
    """N connect-proxy registrations (destination f0000...), as a sidecar task's; their service IDs."""
    ids = [f"f{i:04d}-sidecar-proxy" for i in range(n)]
    local = threading.local()

    def register(i: int) -> None:
        s = getattr(local, "s", None) or requests.Session()
        local.s = s
        s.put(f"{consul}/v1/agent/service/register", timeout=30, json={
            "Kind": "connect-proxy", "ID": ids[i], "Name": f"f{i:04d}-sidecar-proxy", "Port": 20000 + i,
            "Proxy": {"DestinationServiceName": f"f{i:04d}", "DestinationServiceID": f"f{i:04d}",
                      "LocalServicePort": 8080},
        }).raise_for_status()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(register, range(n)))
    return ids


def one_round(consul: str, agent_pid: int, fleet: Fleet, ids: list[str], write: bool,
              timeout: float) -> tuple[list[float], float, float, float]:
    """(seconds to each proxy's ACK, write's own seconds, agent CPU s, client CPU s) for one change."""
    before = {nid: fleet.seen.lds_acked[nid][0] for nid in ids}
    cpu_agent, cpu_client = cpu_seconds(agent_pid), time.process_time()
    t0 = time.perf_counter()
    if write:
        r = requests.put(f"{consul}/v1/config", json=ENTRY, timeout=30)
    else:
        r = requests.delete(f"{consul}/v1/config/service-intentions/*", timeout=30)
    r.raise_for_status()
    write_s = time.perf_counter() - t0
    wait_until(lambda: all(fleet.seen.lds_acked[nid][0] != before[nid] for nid in ids), timeout, step=0.01,
               what=f"{len(ids)} proxies ACKing the new listeners")
    took = [fleet.seen.lds_acked[nid][1] - t0 for nid in ids]
    return took, write_s, cpu_seconds(agent_pid) - cpu_agent, time.process_time() - cpu_client


def ads_fanout_figures(proxies: int, rounds: int) -> dict[str, float]:
    n = proxies
    with agent_session() as agent:
        pid = agent.proc.pid  # type: ignore[union-attr]
        t0 = time.perf_counter()
        ids = register_proxies(agent.consul_addr, n)
        register_s = time.perf_counter() - t0
        fleet = Fleet(f"127.0.0.1:{agent.grpc_port}", ids)
        try:
            wait_until(lambda: len(fleet.seen.lds_acked) == n or fleet.seen.errors, 300, step=0.05,
                       what=f"{n} streams ACKing their first listeners")
            if fleet.seen.errors:
                raise RuntimeError(f"ADS streams failed: {fleet.seen.errors[:3]}")
            first_s = time.perf_counter() - t0
            results = [one_round(agent.consul_addr, pid, fleet, ids, write=r % 2 == 0, timeout=120)
                       for r in range(rounds)]
        finally:
            fleet.stop()
    every = [s for took, *_ in results for s in took]
    lasts = [max(took) for took, *_ in results]
    key = f"ads_{n}"
    return {
        f"{key}_proxies": n,
        f"{key}_rounds": rounds,
        f"{key}_register_s": round(register_s, 1),
        f"{key}_first_config_all_s": round(first_s, 1),
        f"{key}_ack_p50_ms": round(pct(every, 50) * 1000, 1),
        f"{key}_ack_p99_ms": round(pct(every, 99) * 1000, 1),
        f"{key}_ack_max_ms": round(max(every) * 1000, 1),
        f"{key}_all_acked_median_ms": round(statistics.median(lasts) * 1000, 1),
        f"{key}_all_acked_max_ms": round(max(lasts) * 1000, 1),
        f"{key}_write_median_ms": round(statistics.median(w for _, w, _, _ in results) * 1000, 1),
        f"{key}_agent_cpu_per_change_s": round(statistics.median(c for *_, c, _ in results), 2),
        f"{key}_client_cpu_per_change_s": round(statistics.median(c for *_, c in results), 2),
        f"{key}_consul_default_rate_s": round(n / CONSUL_DEFAULT_UPDATES_PER_S, 1),
    }


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, ads_fanout_figures, argv, proxies=(int, 1000), rounds=(int, 3))


if __name__ == "__main__":
    sys.exit(main())
