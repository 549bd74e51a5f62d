"""From the agent's catalog and config entries to one ProxySnapshot per sidecar. Pure.

Inputs are plain state documents (services, checks, config entries) plus the CA material; the
output is what `SnapshotCache.set` takes. The manager (manager.py) does the I/O around this.

Endpoints of an upstream are the healthy instances of the destination's sidecars (every check
passing, including the alias of the app's own checks), at the address another allocation can
dial: a sidecar in a bridge-mode allocation is registered on the host's loopback, which no other
namespace reaches, so its `nomad_bridge` tagged address (allocation IP, in-namespace port) wins.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from nomadmesh.agent.connect.snapshot import Address, ExposePath, ProxySnapshot, UpstreamSnap
from nomadmesh.agent.http.consul_entries import protocol_of
from nomadmesh.mesh import intentions as ixn

BRIDGE_TAG = "nomad_bridge"
CONFIG_KIND = "config"  # state kind of config entries, keyed "<kind>/<name>"


@dataclass(frozen=True)
class MeshView:
    """What every snapshot is built from: one consistent read of the state."""

    services: tuple[dict[str, Any], ...]
    checks: tuple[dict[str, Any], ...]
    entries: dict[str, dict[str, Any]]  # "<kind>/<name>" -> config entry
    datacenter: str
    trust_domain: str
    roots_pem: str
    default_allow: bool

    def lookup(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.entries.get(f"{kind}/{name}")


def proxies(view: MeshView) -> list[dict[str, Any]]:
    """The connect-proxy services that need a snapshot."""
    return [s for s in view.services if s.get("Kind") == "connect-proxy"
            and (s.get("Proxy") or {}).get("DestinationServiceName")]


def healthy(view: MeshView, service_id: str) -> bool:
    return all(c.get("Status") == "passing" for c in view.checks if c.get("ServiceID") == service_id)


def dial_address(svc: dict[str, Any]) -> tuple[str, int]:
    """Where another proxy reaches this sidecar's public listener."""
    bridge = (svc.get("TaggedAddresses") or {}).get(BRIDGE_TAG)
    if isinstance(bridge, dict) and bridge.get("Address") and bridge.get("Port"):
        return str(bridge["Address"]), int(bridge["Port"])
    return (svc.get("Address") or "127.0.0.1"), int(svc["Port"])


def endpoints(view: MeshView, destination: str) -> tuple[tuple[str, int], ...]:
    found = {dial_address(s) for s in proxies(view)
             if s["Proxy"]["DestinationServiceName"] == destination and healthy(view, s["ID"])}
    return tuple(sorted(found))


def intentions_for(view: MeshView, service: str) -> tuple[ixn.Intention, ...]:
    """Intentions whose destination is `service` or `*`, from the service-intentions entries."""
    out: list[ixn.Intention] = []
    for name in (service, ixn.WILDCARD):
        entry = view.lookup(ixn.KIND, name)
        if entry is not None:
            out += ixn.from_config_entry(entry)
    return tuple(ixn.sort_by_precedence(out))


def protocol(view: MeshView, service: str) -> str:
    # The builders know tcp and http; http2 and grpc get the HTTP chain too (L7 RBAC applies).
    return "tcp" if protocol_of(service, view.lookup) == "tcp" else "http"


def build_snapshot(view: MeshView, proxy: dict[str, Any], leaf_cert_pem: str, leaf_key_pem: str) -> ProxySnapshot:
    p = proxy["Proxy"]
    service = p["DestinationServiceName"]
    cfg = p.get("Config") or {}
    bind_address = str(cfg.get("bind_address") or "0.0.0.0")
    bind_port = int(cfg.get("bind_port") or proxy["Port"])
    upstreams = tuple(
        UpstreamSnap(destination=u["DestinationName"], local_bind_port=int(u["LocalBindPort"]),
                     local_bind_address=u.get("LocalBindAddress") or "127.0.0.1",
                     datacenter=u.get("Datacenter") or None,
                     endpoints=endpoints(view, u["DestinationName"]))
        for u in p.get("Upstreams") or [] if u.get("DestinationType", "service") == "service")
    exposed = tuple(
        ExposePath(path=e["Path"], local_path_port=int(e["LocalPathPort"]), listener_port=int(e["ListenerPort"]),
                   protocol=e.get("Protocol") or "http")
        for e in (p.get("Expose") or {}).get("Paths") or [] if e.get("ListenerPort"))
    return ProxySnapshot(
        proxy_id=proxy["ID"], service=service, datacenter=view.datacenter, trust_domain=view.trust_domain,
        public_listener=Address(bind_address, bind_port),
        local_app=Address(p.get("LocalServiceAddress") or "127.0.0.1", int(p.get("LocalServicePort") or 0)),
        roots_pem=view.roots_pem, leaf_cert_pem=leaf_cert_pem, leaf_key_pem=leaf_key_pem,
        protocol=protocol(view, service), upstreams=upstreams, intentions=intentions_for(view, service),
        default_allow=view.default_allow, exposed_paths=exposed,
    )


def build_all(view: MeshView, leaf: Callable[[str], tuple[str, str]]) -> dict[str, ProxySnapshot]:
    """proxy id -> snapshot; `leaf(service)` returns (cert PEM, key PEM) for a service name."""
    out = {}
    for proxy in proxies(view):
        cert, key = leaf(proxy["Proxy"]["DestinationServiceName"])
        out[proxy["ID"]] = build_snapshot(view, proxy, cert, key)
    return out
