"""Mesh hop latency vs direct at fixed request rates. Prints, never asserts.

    .venv/bin/python bench/hop.py [--rates 200,500] [--seconds 5] [--json]

The setup of bench/connect_dataplane.py (our ADS server, two real Envoys on loopback with mTLS and
RBAC, the keep-alive backend of tests/support/connect_support.py that disables Nagle), driven open-loop at a fixed
rate: requests are sent on a fixed schedule, alternating direct (client -> backend) and mesh
(client -> client sidecar -> server sidecar -> backend), so both paths see the same machine noise.
Each path gets `rate` requests per second, keep-alive (one connection per path) and then a new TCP
connection per request. Figures: p50/p90/p99 of each path, the added µs (mesh - direct, per
percentile) and mesh/direct ratios. Latency is timed from the actual send; `late` counts sends that
started more than one period after their slot (the client could not keep the rate).
"""
from __future__ import annotations

import http.client
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agentkit import bench_main, pct, rates_arg
from connect_dataplane import CLIENT, SERVER, status, wait  # same loopback mesh, same probes
from nomadmesh.agent.connect.ca import ConnectCA
from nomadmesh.agent.connect.cache import SnapshotCache
from nomadmesh.agent.connect.xds import XdsServer
from nomadmesh.connect.envoy import EnvoyProcess
from support.connect_support import free_port, snapshot, start_backend, upstream

PERCENTILES = (50, 90, 99)


@contextmanager
def loopback_mesh(backend_port: int | None = None) -> Iterator[tuple[int, int]]:
    """(direct backend port, client sidecar's upstream port) for a running server+client Envoy pair,
    in front of `backend_port`, or of tests/support's Python backend started here."""
    ca = ConnectCA.generate("bench-hop")
    work = Path(tempfile.mkdtemp(prefix="nmhop"))
    backend = None
    if backend_port is None:
        backend, app_port = start_backend("server")
        # socketserver listens with a backlog of 5: a new connection per request at 1,000/s overflows it
        # (dropped SYNs, retried after 1 s) and the backend, not the hop, would be measured.
        backend.socket.listen(1024)
    else:
        app_port = backend_port
    sp, cp, up = free_port(), free_port(), free_port()
    cache = SnapshotCache()
    cache.set(SERVER, snapshot("server", sp, app_port, ca=ca, public_address="127.0.0.1"))
    cache.set(CLIENT, snapshot("client", cp, app_port, ca=ca, public_address="127.0.0.1",
                               upstreams=(upstream("server", up, (("127.0.0.1", sp),)),)))
    xds = XdsServer(cache, "127.0.0.1:0", work / "xds.sock").start()
    envoys: list[EnvoyProcess] = []
    try:
        for proxy, service, listener in ((SERVER, "server", f"public_listener:127.0.0.1:{sp}"),
                                         (CLIENT, "client", f"server:127.0.0.1:{up}")):
            e = EnvoyProcess(proxy, service, xds.address, work / service)
            envoys.append(e.start())
            e.wait_listener(listener)
        wait(lambda: status(up) == 200)
        yield app_port, up
    finally:
        for e in envoys:
            e.stop()
        xds.stop()
        if backend is not None:
            backend.shutdown()
            backend.server_close()
        shutil.rmtree(work, ignore_errors=True)


def paced(ports: dict[str, int], rate: float, seconds: float,
          keepalive: bool) -> tuple[dict[str, list[float]], int, float]:
    """Alternate one request per path on a fixed schedule of 2 * rate slots per second.
    Returns the latencies per path, how many sends were late, and the elapsed seconds."""
    conns = {k: http.client.HTTPConnection("127.0.0.1", p, timeout=5) for k, p in ports.items()} if keepalive else {}
    out: dict[str, list[float]] = {k: [] for k in ports}
    order = list(ports)
    period = 1 / (rate * len(order))
    slots = int(rate * seconds) * len(order)
    late = 0
    start = time.perf_counter()
    try:
        for i in range(slots):
            slot = start + i * period
            while (now := time.perf_counter()) < slot:
                if slot - now > 0.002:
                    time.sleep(slot - now - 0.001)
            if now - slot > period:
                late += 1
            key = order[i % len(order)]
            t0 = time.perf_counter()
            code = status(ports[key], "/l", conns.get(key))
            out[key].append(time.perf_counter() - t0)
            if code != 200:
                raise RuntimeError(f"{key} request failed ({code})")
    finally:
        for c in conns.values():
            c.close()
    return out, late, time.perf_counter() - start


def compared(key: str, direct: list[float], mesh: list[float],
             percentiles: tuple[int, ...] = PERCENTILES) -> dict[str, float]:
    """Per percentile: each path's latency in µs, the mesh's added µs and the mesh/direct ratio."""
    figs: dict[str, float] = {}
    for p in percentiles:
        d, m = pct(direct, p), pct(mesh, p)
        figs[f"{key}_direct_p{p}_us"] = round(d * 1e6)
        figs[f"{key}_mesh_p{p}_us"] = round(m * 1e6)
        figs[f"{key}_added_p{p}_us"] = round((m - d) * 1e6)
        figs[f"{key}_ratio_p{p}"] = round(m / d, 2)
    return figs


def hop_figures(rates: tuple[int, ...], seconds: float) -> dict[str, float]:
    figs: dict[str, float] = {}
    with loopback_mesh() as (direct, mesh):
        ports = {"direct": direct, "mesh": mesh}
        paced(ports, 200, 0.5, True)  # warm up both paths
        for mode, keepalive in (("keepalive", True), ("newconn", False)):
            for rate in rates:
                lat, late, elapsed = paced(ports, rate, seconds, keepalive)
                key = f"hop_{mode}_{rate}rps"
                figs |= compared(key, lat["direct"], lat["mesh"])
                figs[f"{key}_late"] = late
                # Per path; below `rate` when the client could not keep the schedule (see `late`).
                figs[f"{key}_achieved_rps"] = round(len(lat["mesh"]) / elapsed)
                figs[f"{key}_n"] = len(lat["mesh"])
    return figs


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, hop_figures, argv, rates=(rates_arg, (200, 500)), seconds=(float, 5.0))


if __name__ == "__main__":
    sys.exit(main())
