"""What one ingress gateway's Envoy needs to know, as an immutable value (cf. snapshot.ProxySnapshot).

Built by proxies.build_ingress from the gateway's catalog registration (bind addresses, connect
timeout), its `ingress-gateway` config entry (listeners and the services behind them) and the
healthy sidecars of those services; turned into Envoy resources by resources/ingress.py.
`version` hashes the whole content, so an unchanged gateway costs the cache one comparison.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields

from nomadmesh.agent.connect import identity


@dataclass(frozen=True)
class IngressTarget:
    """A service behind a listener, with its healthy sidecars' public listeners."""

    name: str
    hosts: tuple[str, ...] = ()  # http listeners: the Host values routed to it ("" = Consul's default)
    endpoints: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class IngressListener:
    port: int
    protocol: str  # "tcp" or "http"
    targets: tuple[IngressTarget, ...]


@dataclass(frozen=True)
class IngressSnapshot:
    proxy_id: str
    service: str  # the gateway's own service name: its identity toward the destinations
    datacenter: str
    trust_domain: str
    bind_addresses: tuple[str, ...]  # where every listener listens (inside the allocation's namespace)
    listeners: tuple[IngressListener, ...]
    roots_pem: str
    leaf_cert_pem: str
    leaf_key_pem: str
    connect_timeout_ms: int = 5000
    version: str = field(default="", init=False, compare=False)

    def __post_init__(self) -> None:
        content = repr(tuple(getattr(self, f.name) for f in fields(self) if f.name != "version"))
        object.__setattr__(self, "version", hashlib.sha256(content.encode()).hexdigest()[:16])

    def cluster_name(self, destination: str) -> str:
        """SNI and cluster name of a destination, the same a sidecar's upstream cluster has."""
        return identity.sni(self.trust_domain, self.datacenter, destination)

    def destination_uri(self, destination: str) -> str:
        return identity.service_uri(self.trust_domain, self.datacenter, destination)

    def targets(self) -> dict[str, IngressTarget]:
        """Every destination once (a service may sit behind several listeners), by name."""
        return {t.name: t for listener in self.listeners for t in listener.targets}
