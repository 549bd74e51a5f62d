"""Connect data-plane figures on loopback (real Envoys, our ADS server). Prints, never asserts.

    .venv/bin/python bench/connect_dataplane.py [--toggles 20] [--requests 2000]

(Not named xds.py: run as a script, bench/ comes first on sys.path and would shadow the `xds`
protobuf package that xds-protos installs.)

Measures: CA signs/s; build_resources + cache.set time; Envoy start → first listener active;
deny push → LDS ACK and → enforced (a fresh request fails), allow push → restored, over N
toggles (p50/p99); an open connection cut after a deny; added latency of one mesh hop vs direct
(keep-alive, and a new connection per request); private memory per sidecar.
"""
from __future__ import annotations

import argparse
import http.client
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from agentkit import (
    http_get_status as status,  # hop.py imports `status` from here
    pct,
)
from nomadmesh.agent.connect.ca import ConnectCA
from nomadmesh.agent.connect.cache import SnapshotCache
from nomadmesh.agent.connect.resources import LISTENER, build_resources
from nomadmesh.agent.connect.snapshot import ProxySnapshot
from nomadmesh.agent.connect.xds import XdsServer
from nomadmesh.connect.envoy import EnvoyProcess
from nomadmesh.mesh.intentions import Intention
from support.connect_support import free_port, snapshot, start_backend, upstream

SERVER, CLIENT = "server-sidecar-proxy", "client-sidecar-proxy"


def fmt(values_s: list[float]) -> str:
    ms = [v * 1000 for v in values_s]
    return f"p50 {pct(ms, 50):.2f} ms  p99 {pct(ms, 99):.2f} ms  max {max(ms):.2f} ms  (n={len(ms)})"


def wait(check, timeout: float = 5) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if check():
            return time.perf_counter() - t0
        time.sleep(0.0005)
    raise RuntimeError("timed out")


def private_kb(pid: int) -> int:
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total


def added(direct: list[float], mesh: list[float]) -> str:
    """What the mesh adds over a direct connection, at the median and the 99th percentile."""
    p50, p99 = (pct(mesh, p) - pct(direct, p) for p in (50, 99))
    return f"  added: p50 {p50 * 1000:.3f} ms, p99 {p99 * 1000:.3f} ms"


def latency(port: int, n: int, keepalive: bool) -> list[float]:
    out = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5) if keepalive else None
    for _ in range(n):
        t0 = time.perf_counter()
        assert status(port, "/l", conn) == 200
        out.append(time.perf_counter() - t0)
    if conn:
        conn.close()
    return out


@dataclass(frozen=True)
class Pair:
    """A server and a client sidecar on loopback, fed by our ADS server; `srv` the server's allowing
    snapshot, `denied` the same with client => server denied."""
    srv: ProxySnapshot
    denied: ProxySnapshot
    app_port: int
    up: int  # the client's upstream listener for the server
    cache: SnapshotCache
    xds: XdsServer
    server: EnvoyProcess
    client: EnvoyProcess
    server_ready_s: float  # Envoy start -> public listener active (TCP xDS)
    client_ready_s: float  # Envoy start -> upstream listener active (unix-socket xDS)


@contextmanager
def loopback_pair(ca: ConnectCA) -> Iterator[Pair]:
    """Start the pair, wait until the client reaches the server through both sidecars, stop it all after."""
    work = Path(tempfile.mkdtemp(prefix="nmbench"))
    backend, app_port = start_backend("server")
    sp, cp, up = free_port(), free_port(), free_port()
    srv = snapshot("server", sp, app_port, ca=ca, public_address="127.0.0.1")
    cli = snapshot("client", cp, app_port, ca=ca, public_address="127.0.0.1",
                   upstreams=(upstream("server", up, (("127.0.0.1", sp),)),))
    cache = SnapshotCache()
    cache.set(SERVER, srv)
    cache.set(CLIENT, cli)
    xds = XdsServer(cache, "127.0.0.1:0", work / "xds.sock").start()
    envoys: list[EnvoyProcess] = []
    try:
        es = EnvoyProcess(SERVER, "server", xds.address, work / "s")
        envoys.append(es.start())
        ready = es.wait_listener(f"public_listener:127.0.0.1:{sp}")
        ec = EnvoyProcess(CLIENT, "client", str(work / "xds.sock"), work / "c")
        envoys.append(ec.start())
        ready_c = ec.wait_listener(f"server:127.0.0.1:{up}")
        wait(lambda: status(up) == 200, 30)
        denied = replace(srv, intentions=(Intention("client", "server", "deny"),))
        yield Pair(srv, denied, app_port, up, cache, xds, es, ec, ready, ready_c)
    finally:
        for e in envoys:
            e.stop()
        xds.stop()
        backend.shutdown()
        backend.server_close()
        shutil.rmtree(work, ignore_errors=True)


def toggle(pair: Pair) -> tuple[float, float]:
    """One deny push then one allow push: seconds until a request is refused, then served again."""
    t0 = time.perf_counter()
    pair.cache.set(SERVER, pair.denied)
    wait(lambda: status(pair.up) is None)
    enforced = time.perf_counter() - t0
    t1 = time.perf_counter()
    pair.cache.set(SERVER, pair.srv)
    wait(lambda: status(pair.up) == 200)
    return enforced, time.perf_counter() - t1


def cut_open_connection(pair: Pair) -> float:
    """Seconds from a deny push until an open, allowed keep-alive connection is closed; allows again."""
    conn = http.client.HTTPConnection("127.0.0.1", pair.up, timeout=5)
    assert status(pair.up, "/", conn) == 200
    conn.sock.settimeout(5)
    t0 = time.perf_counter()
    pair.cache.set(SERVER, pair.denied)
    try:
        conn.sock.recv(1)
    except ConnectionError:
        pass
    cut = time.perf_counter() - t0
    conn.close()
    pair.cache.set(SERVER, pair.srv)
    wait(lambda: status(pair.up) == 200)
    return cut


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--toggles", type=int, default=20)
    ap.add_argument("--requests", type=int, default=2000)
    args = ap.parse_args()

    ca = ConnectCA.generate("bench")
    t0 = time.perf_counter()
    for _ in range(300):
        ca.sign_leaf("web", "dc1")
    print(f"CA leaf signing: {300 / (time.perf_counter() - t0):.0f} signs/s")

    with loopback_pair(ca) as pair:
        t0 = time.perf_counter()
        for _ in range(200):
            build_resources(pair.srv)
        print(f"build_resources: {(time.perf_counter() - t0) / 200 * 1e6:.0f} us per snapshot")
        print(f"Envoy start -> listener active: server {pair.server_ready_s * 1000:.0f} ms (TCP xDS), "
              f"client {pair.client_ready_s * 1000:.0f} ms (unix-socket xDS)")

        ack, enforced, restored = [], [], []
        for _ in range(args.toggles):
            t0 = time.perf_counter()
            want = pair.cache.set(SERVER, pair.denied).versions[LISTENER]
            wait(lambda want=want: pair.xds.streams[SERVER].acked_versions.get(LISTENER) == want)  # bound now
            ack.append(time.perf_counter() - t0)
            wait(lambda: status(pair.up) is None)
            enforced.append(time.perf_counter() - t0)
            t1 = time.perf_counter()
            pair.cache.set(SERVER, pair.srv)
            wait(lambda: status(pair.up) == 200)
            restored.append(time.perf_counter() - t1)
        print(f"deny push -> LDS ACK:         {fmt(ack)}")
        print(f"deny push -> request refused: {fmt(enforced)}")
        print(f"allow push -> request served: {fmt(restored)}")
        print(f"deny push -> open connection closed: {fmt([cut_open_connection(pair) for _ in range(5)])}")

        n, app_port, up = args.requests, pair.app_port, pair.up
        latency(app_port, 200, True)
        latency(up, 200, True)  # warm up
        direct, mesh = latency(app_port, n, True), latency(up, n, True)
        print(f"keep-alive   direct {fmt(direct)}")
        print(f"keep-alive   mesh   {fmt(mesh)}")
        print(added(direct, mesh))
        direct, mesh = latency(app_port, n // 4, False), latency(up, n // 4, False)
        print(f"new conn     direct {fmt(direct)}")
        print(f"new conn     mesh   {fmt(mesh)}")
        print(added(direct, mesh))
        for name, e in (("server", pair.server), ("client", pair.client)):
            assert e.proc is not None  # started by loopback_pair
            print(f"Envoy {name} sidecar private memory: {private_kb(e.proc.pid) / 1024:.1f} MiB")


def dataplane_figures(toggles: int) -> dict[str, float]:
    """bench/run.py's figures (ms): Envoy start to listener, deny enforced / allow restored (p50, p99)
    over `toggles` pushes, and an open connection cut after a deny (p50). tests/e2e/test_connect_e2e.py
    checks the same behaviour without timing it."""
    with loopback_pair(ConnectCA.generate("bench")) as pair:
        toggles_s = [toggle(pair) for _ in range(toggles)]
        cuts = [cut_open_connection(pair) for _ in range(max(1, toggles // 4))]
    ready = pair.server_ready_s
    enforced, restored = [e for e, _ in toggles_s], [r for _, r in toggles_s]
    ms = 1000
    return {
        "envoy_start_listener_ms": round(ready * ms, 1),
        "deny_enforced_p50_ms": round(pct(enforced, 50) * ms, 1),
        "deny_enforced_p99_ms": round(pct(enforced, 99) * ms, 1),
        "allow_restored_p50_ms": round(pct(restored, 50) * ms, 1),
        "allow_restored_p99_ms": round(pct(restored, 99) * ms, 1),
        "deny_cut_open_p50_ms": round(pct(cuts, 50) * ms, 1),
    }


if __name__ == "__main__":
    main()
