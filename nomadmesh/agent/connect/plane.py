"""Connect in the running agent: CA, snapshot cache, proxy manager and ADS server, started and
stopped together. The agent stores the running instance in `ctx.extras["connect"]` (the CA
endpoints read it) and the sidecars' xDS address in `ctx.extras["xds_address"]` (the runner
writes it into each Envoy bootstrap).

The ADS server listens on a unix socket in the data dir: Envoys inside network namespaces cannot
reach the host's loopback, but they share its filesystem, as Nomad's alloc/tmp/consul_grpc.sock
does; `nomadmesh connect envoy` on the host finds it in /v1/agent/self (DebugConfig.GRPCAddrs).
The socket is 0600 in a 0700 dir: whoever can connect can ask for any service's certificate and
key, so only the agent's user may. A TCP listener exists only with `--grpc-port` (Consul's
`ports.grpc`), off by default because it has no such protection: any local user could connect.
"""
from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nomadmesh.agent.connect.ca import ConnectCA
from nomadmesh.agent.connect.cache import SnapshotCache
from nomadmesh.agent.connect.manager import ProxyManager
from nomadmesh.agent.connect.xds import XdsServer
from nomadmesh.agent.context import AgentContext
from nomadmesh.agent.datadir import make_private_dir

log = logging.getLogger("nomadmesh.agent.connect")

SOCKET_NAME = "xds.sock"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes including the NUL; keep a margin


def socket_path(data_dir: Path) -> Path:
    """`<data dir>/xds.sock`, or a short per-data-dir path in the temp dir when that is too long
    (in a 0700 dir of the agent's own, made by ConnectRuntime.start)."""
    path = Path(data_dir).resolve() / SOCKET_NAME
    if len(str(path).encode()) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"nomadmesh-{digest}" / SOCKET_NAME


@dataclass
class ConnectRuntime:
    ca: ConnectCA
    cache: SnapshotCache
    manager: ProxyManager
    xds: XdsServer

    @property
    def xds_address(self) -> str:
        return f"unix://{self.xds.unix_path}"

    @classmethod
    def start(cls, ctx: AgentContext) -> "ConnectRuntime":
        cfg = ctx.config
        ca = ConnectCA.load_or_create(make_private_dir(Path(cfg.data_dir) / "connect"), ctx.cluster_id)
        cache = SnapshotCache()
        tcp = f"{cfg.bind}:{cfg.grpc_port}" if cfg.grpc_port is not None else None
        unix_path = socket_path(cfg.data_dir)
        make_private_dir(unix_path.parent)
        xds = XdsServer(cache, tcp_address=tcp, unix_path=unix_path)
        xds.start()
        try:
            manager = ProxyManager(ctx, ca, cache).start()
        except BaseException:
            xds.stop()
            raise
        runtime = cls(ca=ca, cache=cache, manager=manager, xds=xds)
        ctx.extras["connect"] = runtime
        ctx.extras["xds_address"] = runtime.xds_address
        log.info("connect: trust domain %s, xDS on %s%s", ca.trust_domain, xds.unix_path,
                 f" and TCP {xds.address} (any local user can reach it)" if tcp else "")
        return runtime

    def stop(self) -> None:
        self.manager.stop()
        self.xds.stop()
