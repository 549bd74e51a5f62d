"""What one sidecar needs to know, as an immutable value: the input of the pure xDS builders.

The agent assembles a ProxySnapshot from its catalog, intentions and CA; `resources.build_resources`
turns it into Envoy resources; the cache versions and serves them. A snapshot never changes after
construction and compares by value, so "did anything change for this proxy" is one comparison;
`version` (computed when first asked) is a short hash of its whole content.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, fields
from typing import Any

from nomadmesh.agent.connect import identity
from nomadmesh.agent.consul.discovery_chain import Chain, Target, compile_chain
from nomadmesh.mesh.intentions import WILDCARD, Intention

PROTOCOLS = ("tcp", "http")


@dataclass(frozen=True)
class Address:
    address: str
    port: int


Endpoints = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class UpstreamSnap:
    """One upstream: its compiled discovery chain and, per chain target, the healthy instances
    (the sidecars' public listeners) that target selects.

    Without a chain (`chain=None`) the upstream is Consul's default chain: one resolver whose
    one target is the destination, with `endpoints` as its instances.
    """

    destination: str
    local_bind_port: int
    local_bind_address: str = "127.0.0.1"
    datacenter: str | None = None  # None: the proxy's own datacenter
    endpoints: Endpoints = ()
    chain: Chain | None = None
    target_endpoints: tuple[tuple[str, Endpoints], ...] = ()  # (target id, its instances), sorted


@dataclass(frozen=True)
class ExposePath:
    """A plain-HTTP path exposed through the sidecar, so the agent's health checks reach the app."""

    path: str
    local_path_port: int
    listener_port: int
    protocol: str = "http"  # "http" or "http2"


@dataclass(frozen=True)
class ProxySnapshot:
    proxy_id: str
    service: str
    datacenter: str
    trust_domain: str
    public_listener: Address
    local_app: Address
    roots_pem: str
    leaf_cert_pem: str
    leaf_key_pem: str
    protocol: str = "tcp"
    upstreams: tuple[UpstreamSnap, ...] = ()
    intentions: tuple[Intention, ...] = ()
    default_allow: bool = True
    exposed_paths: tuple[ExposePath, ...] = ()

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, not {self.protocol!r}")
        # Only intentions that can apply to this destination belong in its RBAC.
        stray = [i for i in self.intentions if i.destination not in (WILDCARD, self.service)]
        if stray:
            raise ValueError(f"intentions for other destinations in {self.service}'s snapshot: {stray}")

    @functools.cached_property
    def version(self) -> str:
        """A hash of the whole content; computed when asked (every pass builds a snapshot per
        proxy, and the cache compares snapshots by value)."""
        content = repr(tuple(getattr(self, f.name) for f in fields(self)))
        return hashlib.sha256(content.encode()).hexdigest()[:16]

    @property
    def service_uri(self) -> str:
        return identity.service_uri(self.trust_domain, self.datacenter, self.service)

    def upstream_datacenter(self, up: UpstreamSnap) -> str:
        return up.datacenter or self.datacenter

    def upstream_cluster(self, up: UpstreamSnap) -> str:
        """SNI and cluster name of an upstream; the one place both are derived from."""
        return identity.sni(self.trust_domain, self.upstream_datacenter(up), up.destination)

    def upstream_uri(self, up: UpstreamSnap) -> str:
        return identity.service_uri(self.trust_domain, self.upstream_datacenter(up), up.destination)

    def chain_of(self, up: UpstreamSnap) -> Chain:
        """The upstream's compiled chain; Consul's default chain when it carries none."""
        if up.chain is not None:
            return up.chain
        return compile_chain(up.destination, lambda kind, name: None, self.upstream_datacenter(up),
                             self.trust_domain)

    def target_endpoints(self, up: UpstreamSnap, target: Target) -> Endpoints:
        if up.chain is None:
            return up.endpoints
        return dict(up.target_endpoints).get(target.id, ())

    def upstream_clusters(self, up: UpstreamSnap) -> list[tuple[Target, tuple[Target, ...], dict[str, Any]]]:
        """Each resolver target of the upstream's chain (one Envoy cluster each), with the targets it
        fails over to, in order (they become lower-priority endpoints of that same cluster), and its
        resolver's LoadBalancer."""
        chain = self.chain_of(up)
        out = {}
        for node in chain.nodes.values():
            if node.resolver is not None:
                target = chain.targets[node.resolver.target]
                out[target.sni] = (target, tuple(chain.targets[t] for t in node.resolver.failover),
                                   node.load_balancer)
        return [out[name] for name in sorted(out)]

    def target_uri(self, target: Target) -> str:
        """The SPIFFE ID a target's instances present (its service, in its datacenter)."""
        return identity.service_uri(self.trust_domain, target.datacenter, target.service)
