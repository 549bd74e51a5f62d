"""Connect in the running agent: CA, snapshot cache, proxy manager and ADS server, built together
by the composition root (agent/build.py), started and stopped with the agent. The CA endpoints get
the plane itself; the runner gets its `xds_address` (written into each Envoy bootstrap), known
from the data dir before anything starts.

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
from dataclasses import dataclass, field, replace
from pathlib import Path

from nomadmesh.agent.connect import ca_config
from nomadmesh.agent.connect.ca import ConnectCA
from nomadmesh.agent.connect.ca_admin import KEY as CA_KEY, KIND as CA_KIND, CAAdmin
from nomadmesh.agent.connect.cache import SnapshotCache
from nomadmesh.agent.connect.manager import ProxyManager
from nomadmesh.agent.connect.signer import LeafSigner
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
    cache: SnapshotCache
    manager: ProxyManager
    xds: XdsServer
    ca_admin: CAAdmin
    signer: LeafSigner = field(default_factory=LeafSigner)  # fresh leaves asked over HTTP, off the loop

    @property
    def ca(self) -> ConnectCA:
        """The CA signing now (the proxy manager's: a root rotation replaces it there)."""
        return self.manager.ca

    @property
    def xds_address(self) -> str:
        """The address Envoy bootstraps name: the ADS server's unix socket (known before it listens)."""
        return f"unix://{self.xds.unix_path}"

    @classmethod
    def build(cls, ctx: AgentContext) -> ConnectRuntime:
        """The plane's parts, not started: loads (or creates) the CA; nothing listens yet."""
        cfg = ctx.config
        ca_dir = make_private_dir(Path(cfg.data_dir) / "connect")
        ca = ConnectCA.load_or_create(ca_dir, ctx.cluster_id)
        stored = ctx.state.get(CA_KIND, CA_KEY)
        if stored is not None:  # the leaf TTL an operator set through /v1/connect/ca/configuration
            ca = replace(ca, leaf_ttl=ca_config.CAConfig("consul", stored.value["Config"]).leaf_ttl)
        cache = SnapshotCache()
        tcp = f"{cfg.bind}:{cfg.grpc_port}" if cfg.grpc_port is not None else None
        xds = XdsServer(cache, tcp_address=tcp, unix_path=socket_path(cfg.data_dir))
        manager = ProxyManager(ctx, ca, cache)
        return cls(cache=cache, manager=manager, xds=xds, ca_admin=CAAdmin(ctx, manager, ca_dir))

    def start(self) -> ConnectRuntime:
        assert self.xds.unix_path is not None  # build() always gives the ADS server its socket
        make_private_dir(self.xds.unix_path.parent)
        self.xds.start()
        try:
            self.manager.start()
        except BaseException:
            self.xds.stop()
            raise
        self.ca_admin.start()
        log.info("connect: trust domain %s, xDS on %s%s", self.ca.trust_domain, self.xds.unix_path,
                 f" and TCP {self.xds.address} (any local user can reach it)" if self.xds.tcp_address else "")
        return self

    def stop(self) -> None:
        self.signer.close()
        self.ca_admin.stop()
        self.manager.stop()
        self.xds.stop()

