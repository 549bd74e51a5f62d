"""Benchmark: the web UI's live topology page for N registered services, served by a real dev agent.

    .venv/bin/python bench/ui_topology.py            # 200 services, 5 runs
    .venv/bin/python bench/ui_topology.py -n 50 --json

Registers N services through the agent's Consul API (each with a sidecar and up to 3 upstreams to
later services; every third one's TTL check failing), then times GET /ui/topology (the whole page:
the catalog, health, intentions and allocation reads, the traffic figures the agent samples, the
layout and the SVG), best and median of --repeat runs, and the same filtered by name (`?q=`).
Target (issue 16): 200 services render in under 1 s server-side, on the 2-core dev machine.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import requests

from agentkit import agent_session


def register(consul: str, n: int, seed: int) -> None:
    rnd = random.Random(seed)
    names = [f"svc-{i:03d}" for i in range(n)]
    with requests.Session() as s:
        for i, name in enumerate(names):
            ups = sorted(set(rnd.sample(names[i + 1:], min(3, n - i - 1)))) if i < n - 1 else []
            body = {"Name": name, "Port": 20000 + i, "Tags": [f"team-{i % 7}"], "Check": {"TTL": "600s"},
                    "Connect": {"SidecarService": {"Proxy": {"Upstreams": [
                        {"DestinationName": u, "LocalBindPort": 30000 + j} for j, u in enumerate(ups)]}}}}
            s.put(f"{consul}/v1/agent/service/register", json=body, timeout=10).raise_for_status()
            state = "fail" if i % 3 == 0 else "pass"
            s.put(f"{consul}/v1/agent/check/{state}/service:{name}", timeout=10).raise_for_status()


def timed(url: str, repeat: int) -> list[float]:
    out = []
    with requests.Session() as s:
        s.get(url, timeout=30).raise_for_status()  # warm: the agent's sampler starts on the first read
        for _ in range(repeat):
            t0 = time.perf_counter()
            r = s.get(url, timeout=30)
            out.append(time.perf_counter() - t0)
            r.raise_for_status()
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args(argv)
    with agent_session() as agent:
        register(agent.consul_addr, args.n, args.seed)
        page = timed(f"{agent.consul_addr}/ui/topology", args.repeat)
        html = requests.get(f"{agent.consul_addr}/ui/topology", timeout=30).text
        drawn = html.count("data-node=")
        assert drawn == args.n, f"every service is drawn: {drawn} of {args.n}"
        filtered = timed(f"{agent.consul_addr}/ui/topology?q=team-3", args.repeat)
    figures = {"ui_topology_services": args.n, "ui_topology_best_s": round(min(page), 3),
               "ui_topology_median_s": round(statistics.median(page), 3),
               "ui_topology_filtered_median_s": round(statistics.median(filtered), 3),
               "ui_topology_html_kib": round(len(html.encode()) / 1024, 1)}
    if args.json:
        print(json.dumps(figures))
    else:
        for k, v in figures.items():
            print(f"{k:32} {v}")
    return figures


if __name__ == "__main__":
    main()
