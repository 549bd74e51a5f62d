"""Added latency of a sidecar pair vs direct at fixed rates, driven by h2load. Prints, never asserts.

    .venv/bin/python bench/hop_latency.py [--rates 500,1000] [--seconds 5] [--json]

bench/hop.py's loopback mesh (our ADS server, a client and a server Envoy with mTLS and RBAC), but
the load comes from h2load (C, fixed rate, every request logged) instead of a Python client and the
backend is a third Envoy answering 200 from a direct_response route instead of a Python server, so
neither the client nor the backend is what is measured (a Python backend spawning a thread per
connection could not accept 1,000 new connections a second on this machine). For
each rate, two h2load processes run at once, one direct (client -> backend) and one through the
mesh (client -> client sidecar -> server sidecar -> backend), each at `rate` requests/s, so both
paths see the same machine noise: first on one kept-alive connection (`--rps`), then with a new
TCP connection per request (`-r`: `rate` connections a second, one request each; through the
mesh that is a new mTLS session between the sidecars too). Figures: p50/p99 per path, added µs
(mesh - direct), mesh/direct ratios, the rate each path reached and how many requests failed (no byte for 5 s).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h2load
from agentkit import bench_main, rates_arg
from connect_dataplane import status, wait
from hop import compared, loopback_mesh
from nomadmesh.connect.envoy import envoy_argv
from support.connect_support import free_port

PERCENTILES = (50, 99)


def backend_bootstrap(port: int) -> dict[str, object]:
    """A static Envoy answering every HTTP/1.1 request on 127.0.0.1:`port` with 200 and 2 bytes."""
    router = {"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    route = {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
                    ".HttpConnectionManager",
           "stat_prefix": "backend", "http_filters": [router],
           "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}]}}
    listener = {"name": "backend", "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                "typed_config": hcm}]}]}
    return {"static_resources": {"listeners": [listener]}}


@contextmanager
def envoy_backend() -> Iterator[int]:
    """The port of a running direct-response Envoy (one worker, as the sidecars)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nmhopbe") as tmp:
        boot = Path(tmp) / "backend.json"
        boot.write_text(json.dumps(backend_bootstrap(port)))
        proc = subprocess.Popen(envoy_argv(boot, log_level="error"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait(lambda: status(port) == 200)
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def load_args(port: int, rate: int, seconds: float, keepalive: bool) -> list[str]:
    n = str(int(rate * seconds))
    url = f"http://127.0.0.1:{port}/l"
    if keepalive:
        return ["-c", "1", "--rps", str(rate), "-n", n, url]
    # New connections at `rate` per second, each making one request (-n / -c = 1). h2load's period
    # is whole milliseconds: one connection every 1000/rate ms where that divides, else a few every 10 ms.
    per, period = (1, 1000 // rate) if 1000 % rate == 0 else (max(1, round(rate / 100)), 10)
    return ["-r", str(per), "--rate-period", f"{period}ms", "-c", n, "-n", n, url]


def side_by_side(ports: dict[str, int], rate: int, seconds: float, keepalive: bool) -> dict[str, h2load.Run]:
    with tempfile.TemporaryDirectory(prefix="nmhoplat") as tmp:
        logs = {path: Path(tmp) / f"{path}.tsv" for path in ports}
        # A request that sees no byte for 5 s is counted as failed (a figure), not waited for.
        procs = {path: h2load.start(["-N", "5s", *load_args(port, rate, seconds, keepalive)], logs[path])
                 for path, port in ports.items()}
        try:
            runs = {path: h2load.finish(proc, logs[path], timeout=seconds * 10 + 60) for path, proc in procs.items()}
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    for path, r in runs.items():
        if not r.latencies_s:
            raise RuntimeError(f"hop {path}: no request answered ({r.failed} failed, {r.non_2xx} not 2xx)")
    return runs


def hop_latency_figures(rates: tuple[int, ...], seconds: float) -> dict[str, float]:
    if not h2load.available():
        raise RuntimeError("h2load not found: apt-get install nghttp2-client (scripts/setup.sh does)")
    figs: dict[str, float] = {}
    with envoy_backend() as backend, loopback_mesh(backend) as (direct, mesh):
        ports = {"direct": direct, "mesh": mesh}
        side_by_side(ports, 200, 0.5, True)  # warm up both paths
        for mode, keepalive in (("keepalive", True), ("newconn", False)):
            for rate in rates:
                runs = side_by_side(ports, rate, seconds, keepalive)
                key = f"hoplat_{mode}_{rate}rps"
                figs |= compared(key, list(runs["direct"].latencies_s), list(runs["mesh"].latencies_s), PERCENTILES)
                figs[f"{key}_direct_achieved_rps"] = round(runs["direct"].per_s)
                figs[f"{key}_mesh_achieved_rps"] = round(runs["mesh"].per_s)
                figs[f"{key}_n"] = len(runs["mesh"].latencies_s)
                figs[f"{key}_failed"] = sum(r.failed + r.non_2xx for r in runs.values())
    return figs


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, hop_latency_figures, argv, rates=(rates_arg, (500, 1000)), seconds=(float, 5.0))


if __name__ == "__main__":
    sys.exit(main())
