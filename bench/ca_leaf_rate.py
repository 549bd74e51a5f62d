"""Leaf certificates per second through the agent's HTTP API, driven by h2load. Prints, never asserts.

    .venv/bin/python bench/ca_leaf_rate.py [--leaves 4000] [--clients 4] [--json]

Against a dev agent, `--clients` h2load processes (one kept-alive h2c connection each, one request at a time) ask
`GET /v1/agent/connect/ca/leaf/<service>` for `--leaves` distinct service names in all (each
client its own names, so every answer is a fresh key pair and signature: the agent keeps one leaf
per service). Side by side, the same clients on `/v1/status/leader` (the HTTP layer's own ceiling)
and on one service's cached leaf (HTTP + the leaf's JSON, no signing), and `ConnectCA.sign_leaf`
called in this process (the CA alone, no HTTP). Consul's default `leaf_cert_rate_limit` is 50/s.
CPU per fresh leaf (user + system, from /proc) of the agent's process and of its children (the
leaf signer), and the load average at the end, since the wall-clock rate depends on what else runs.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import requests

import h2load
from agentkit import agent_session, bench_main, cpu_seconds
from nomadmesh.agent.connect.ca import ConnectCA, leaf_json

CONSUL_DEFAULT_LEAF_RATE = 50


def in_process_per_s(seconds: float = 1.0) -> tuple[float, float]:
    """(sign_leaf/s, sign_leaf + Consul's JSON/s) in this process."""
    ca = ConnectCA.generate("bench-ca")
    rates = []
    for with_json in (False, True):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            leaf = ca.sign_leaf(f"svc-{n}", "dc1")
            if with_json:
                json.dumps(leaf_json(leaf, n))
            n += 1
        rates.append(n / (time.perf_counter() - t0))
    return rates[0], rates[1]


def children(pid: int) -> list[int]:
    """The processes `pid` started (the agent's leaf signer), from /proc."""
    pids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(c) for c in (task / "children").read_text().split()]
    return pids


def tree_cpu(pid: int) -> tuple[float, float]:
    """(CPU seconds of `pid`, CPU seconds of its live children)."""
    return cpu_seconds(pid), sum(cpu_seconds(c) for c in children(pid))


def parallel(runs: list[list[str]]) -> tuple[float, int, int]:
    """Start every h2load at once; (requests/s over the whole wall time, succeeded, failed or non-2xx)."""
    t0 = time.perf_counter()
    procs = [h2load.start(args) for args in runs]
    results = [h2load.finish(p) for p in procs]
    wall = time.perf_counter() - t0
    ok = sum(r.succeeded - r.non_2xx for r in results)
    return ok / wall, ok, sum(r.failed + r.non_2xx for r in results)


def ca_leaf_rate_figures(leaves: int, clients: int, sign_seconds: float = 1.0) -> dict[str, float]:
    per_client = leaves // clients
    with agent_session() as agent, tempfile.TemporaryDirectory(prefix="nmca") as tmp:
        base = f"{agent.consul_addr}/v1/agent/connect/ca/leaf"
        requests.get(f"{base}/warm-up", timeout=10).raise_for_status()
        n_args = ["-n", str(per_client), "-c", "1"]
        leader, _, _ = parallel([[*n_args, f"{agent.consul_addr}/v1/status/leader"]] * clients)
        cached, _, _ = parallel([[*n_args, f"{base}/warm-up"]] * clients)
        files = []
        for c in range(clients):
            path = Path(tmp) / f"uris-{c}.txt"
            path.write_text("".join(f"{base}/bench-{c}-{i}\n" for i in range(per_client)))
            files.append(path)
        assert agent.proc is not None
        cpu_before = tree_cpu(agent.proc.pid)
        fresh, ok, bad = parallel([[*n_args, "-i", str(f)] for f in files])
        cpu_after = tree_cpu(agent.proc.pid)
        if bad or ok != per_client * clients:
            raise RuntimeError(f"leaf requests: {ok} answered, {bad} failed or not 2xx")
        # Spot check: the names were signed once each, by the agent's CA (the serial tells them apart).
        serials = {requests.get(f"{base}/bench-{c}-{i}", timeout=10).json()["SerialNumber"]
                   for c in range(clients) for i in (0, per_client - 1)}
        if len(serials) != 2 * clients:
            raise RuntimeError("leaf answers were not distinct signatures")
    sign, sign_json = in_process_per_s(sign_seconds)
    return {
        "ca_rate_leaves": per_client * clients,
        "ca_rate_clients": clients,
        "ca_rate_leaf_per_s": round(fresh),
        "ca_rate_cached_leaf_per_s": round(cached),
        "ca_rate_leader_per_s": round(leader),
        "ca_rate_sign_in_process_per_s": round(sign),
        "ca_rate_sign_json_in_process_per_s": round(sign_json),
        "ca_rate_consul_default_per_s": CONSUL_DEFAULT_LEAF_RATE,
        "ca_rate_agent_cpu_ms_per_leaf": round((cpu_after[0] - cpu_before[0]) * 1000 / ok, 3),
        "ca_rate_signer_cpu_ms_per_leaf": round((cpu_after[1] - cpu_before[1]) * 1000 / ok, 3),
        "ca_rate_load_average_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, ca_leaf_rate_figures, argv, leaves=(int, 4000), clients=(int, 4))


if __name__ == "__main__":
    sys.exit(main())
