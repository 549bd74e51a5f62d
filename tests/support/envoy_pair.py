"""Two real Envoys on loopback driven by our ADS server, for the Connect data-plane tests.

    test ──▶ client sidecar  upstream listener `server:127.0.0.1:<up>`  (xDS over the unix socket)
                 │ mTLS, SNI server.default.dc1.internal.<td>
                 ▼
             server sidecar  public_listener:127.0.0.1:<sp>  (xDS over TCP)  ──▶ backend HTTP app
"""
from __future__ import annotations

import http.client
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from nomadmesh.agent.connect.cache import SnapshotCache
from nomadmesh.agent.connect.snapshot import ExposePath, ProxySnapshot
from nomadmesh.agent.connect.xds import XdsServer
from nomadmesh.connect.envoy import EnvoyProcess
from support.connect_support import free_port, snapshot, start_backend, upstream
from support.waiting import wait_until

SERVER, CLIENT = "server-sidecar-proxy", "client-sidecar-proxy"


@dataclass
class Mesh:
    dir: Path
    cache: SnapshotCache
    xds: XdsServer
    server_envoy: EnvoyProcess
    client_envoy: EnvoyProcess
    server_snap: ProxySnapshot
    server_port: int
    upstream_port: int
    health_port: int
    startup_s: float

    def get(self, path: str = "/", port: int | None = None, timeout: float = 2) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port or self.upstream_port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def status(self, path: str = "/") -> int | None:
        """The HTTP status of a fresh request, None if the connection was refused or cut."""
        try:
            return self.get(path)[0]
        except (OSError, http.client.HTTPException):
            return None

    def ok(self, path: str = "/") -> bool:
        return self.status(path) == 200

    def set_server(self, **changes) -> None:
        self.cache.set(SERVER, replace(self.server_snap, **changes))

    def restore(self) -> None:
        self.cache.set(SERVER, self.server_snap)
        wait_until(self.ok, 5, "mesh restored")


def envoy_pair() -> Iterator[Mesh]:
    """Start the pair and its ADS server; stop everything after (no Envoy may be left)."""
    work = Path(tempfile.mkdtemp(prefix="nme2e"))  # short path: it holds the unix socket
    backend, app_port = start_backend("server")
    sp, cp, up, hp = free_port(), free_port(), free_port(), free_port()
    cache = SnapshotCache()
    server_snap = snapshot("server", sp, app_port, public_address="127.0.0.1",
                           exposed_paths=(ExposePath("/health", app_port, hp),))
    cache.set(SERVER, server_snap)
    cache.set(CLIENT, snapshot("client", cp, app_port, public_address="127.0.0.1",
                               upstreams=(upstream("server", up, (("127.0.0.1", sp),)),)))
    xds = XdsServer(cache, "127.0.0.1:0", work / "xds.sock").start()
    envoys: list[EnvoyProcess] = []
    try:
        t0 = time.monotonic()
        server_envoy = EnvoyProcess(SERVER, "server", xds.address, work / "server")
        envoys.append(server_envoy.start())
        client_envoy = EnvoyProcess(CLIENT, "client", str(work / "xds.sock"), work / "client")
        envoys.append(client_envoy.start())
        server_envoy.wait_listener(f"public_listener:127.0.0.1:{sp}")
        client_envoy.wait_listener(f"server:127.0.0.1:{up}")
        m = Mesh(work, cache, xds, server_envoy, client_envoy, server_snap, sp, up, hp,
                 time.monotonic() - t0)
        wait_until(m.ok, 10, "first request through the mesh")
        yield m
        xds = m.xds  # a test may have replaced it
    finally:
        for envoy in envoys:
            envoy.stop()
        xds.stop()
        backend.shutdown()
        backend.server_close()
        shutil.rmtree(work, ignore_errors=True)
    for envoy in envoys:
        assert envoy.proc is None
