"""What one sidecar needs to know, as an immutable value: the input of the pure xDS builders.

The agent assembles a ProxySnapshot from its catalog, intentions and CA; `resources.build_resources`
turns it into Envoy resources; the cache versions and serves them. A snapshot never changes after
construction, and `version` is a hash of its whole content, so "did anything change for this proxy"
is one string comparison.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields

from nomadmesh.agent.connect import identity
from nomadmesh.mesh.intentions import WILDCARD, Intention

PROTOCOLS = ("tcp", "http")


@dataclass(frozen=True)
class Address:
    address: str
    port: int


@dataclass(frozen=True)
class UpstreamSnap:
    """One upstream with its healthy instances (the sidecars' public listeners)."""

    destination: str
    local_bind_port: int
    local_bind_address: str = "127.0.0.1"
    datacenter: str | None = None  # None: the proxy's own datacenter
    endpoints: tuple[tuple[str, int], ...] = ()


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
    version: str = field(default="", init=False, compare=False)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, not {self.protocol!r}")
        # Only intentions that can apply to this destination belong in its RBAC.
        stray = [i for i in self.intentions if i.destination not in (WILDCARD, self.service)]
        if stray:
            raise ValueError(f"intentions for other destinations in {self.service}'s snapshot: {stray}")
        content = repr(tuple(getattr(self, f.name) for f in fields(self) if f.name != "version"))
        object.__setattr__(self, "version", hashlib.sha256(content.encode()).hexdigest()[:16])

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
