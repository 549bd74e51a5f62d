"""From the agent's catalog and config entries to one ProxySnapshot per sidecar. Pure.

Inputs are plain state documents (services, checks, config entries) plus the CA material; the
output is what `SnapshotCache.set` takes. Ingress gateways (Kind `ingress-gateway` with an
`ingress-gateway` config entry) get an IngressSnapshot: their listeners, and the same healthy
sidecar endpoints an upstream of those services would get. The manager (manager.py) does the I/O around this.

Endpoints of an upstream are the healthy instances of the destination's sidecars (every check
passing, including the alias of the app's own checks), at the address another allocation can
dial: a sidecar in a bridge-mode allocation is registered on the host's loopback, which no other
namespace reaches, so its `nomad_bridge` tagged address (allocation IP, in-namespace port) wins.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from nomadmesh.agent.connect.ingress_snapshot import IngressListener, IngressSnapshot, IngressTarget
from nomadmesh.agent.connect.snapshot import Address, ExposePath, ProxySnapshot, UpstreamSnap
from nomadmesh.agent.consul import config_store, filter as bexpr, ingress_gateway as ingress
from nomadmesh.agent.consul.config_entries import protocol_of
from nomadmesh.agent.consul.discovery_chain import Chain, ChainError, Overrides, Target, compile_chain
from nomadmesh.mesh import intentions as ixn

log = logging.getLogger("nomadmesh.agent.connect")

BRIDGE_TAG = "nomad_bridge"
CONFIG_KIND = config_store.KIND  # state kind of config entries, keyed "<kind>/<name>"


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
    # Connect proxies registered through /v1/catalog/register (on other nodes): upstream endpoints
    # only, never a snapshot of their own; each with its Address resolved and `_Healthy` set.
    remote_proxies: tuple[dict[str, Any], ...] = ()

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
    found |= {dial_address(s) for s in view.remote_proxies
              if (s.get("Proxy") or {}).get("DestinationServiceName") == destination and s.get("_Healthy")}
    return tuple(sorted(found))


def _passes(view: MeshView, service_id: str, only_passing: bool) -> bool:
    """Consul's endpoint health: a critical check excludes an instance; a warning one only when
    the subset says OnlyPassing."""
    bad = ("critical",) if not only_passing else ("critical", "warning", "maintenance")
    return not any(c.get("Status") in bad for c in view.checks if c.get("ServiceID") == service_id)


@functools.lru_cache(maxsize=256)  # every pass re-reads the same few filters; parsing one costs ~1 ms
def _subset_predicate(target: Target) -> bexpr.Predicate:
    if not target.filter:
        return lambda row: True
    try:
        return bexpr.compile_filter(target.filter, bexpr.CHECK_SERVICE_NODE)
    except bexpr.FilterError as e:
        # Consul refuses such a resolver when it is written; one stored anyway selects nobody.
        log.error("connect: subset %s: filter %r: %s", target.id, target.filter, e)
        return lambda row: False


def target_endpoints(view: MeshView, target: Target) -> tuple[tuple[str, int], ...]:
    """The instances a chain target selects: the destination's sidecars (local and registered
    remotely) that are healthy by Consul's rules and match the subset's filter, evaluated as
    Consul does over the sidecar's CheckServiceNode (Service.Tags, Service.Meta, Node, Checks).

    A target in another datacenter (an upstream's `Datacenter`, a resolver's redirect or failover)
    has none: Consul asks that datacenter's servers, and the dev agent knows no other ("No path to
    datacenter"), so the cluster stays empty and fails closed; the local instances of the same
    name are never its endpoints."""
    if target.datacenter != view.datacenter:
        return ()
    matches = _subset_predicate(target)
    found = set()
    for s in proxies(view):
        if s["Proxy"]["DestinationServiceName"] != target.service or not _passes(view, s["ID"], target.only_passing):
            continue
        row = {"Node": {"Node": s.get("Node") or "", "Datacenter": view.datacenter}, "Service": s,
               "Checks": [c for c in view.checks if c.get("ServiceID") == s["ID"]]}
        if matches(row):
            found.add(dial_address(s))
    for s in view.remote_proxies:
        if (s.get("Proxy") or {}).get("DestinationServiceName") == target.service and s.get("_Healthy") \
                and matches({"Node": {}, "Service": s, "Checks": []}):
            found.add(dial_address(s))
    return tuple(sorted(found))


def chain_for(view: MeshView, destination: str, datacenter: str, overrides: Overrides) -> Chain:
    """The upstream's discovery chain from the stored resolver/splitter/router entries."""
    return compile_chain(destination, view.lookup, datacenter, view.trust_domain, overrides)


def upstream_overrides(upstream: dict[str, Any]) -> Overrides:
    """What an upstream's own Config overrides in its chain, as Consul's proxycfg passes it:
    `protocol` and `connect_timeout_ms`."""
    cfg = upstream.get("Config") or {}
    timeout_ms = cfg.get("connect_timeout_ms")
    return Overrides(protocol=str(cfg.get("protocol") or "").lower(),
                     connect_timeout_ns=int(float(timeout_ms) * 1_000_000) if timeout_ms else 0)


def upstream_snap(view: MeshView, u: dict[str, Any]) -> UpstreamSnap:
    destination = u["DestinationName"]
    datacenter = u.get("Datacenter") or None
    chain = chain_for(view, destination, datacenter or view.datacenter, upstream_overrides(u))
    return UpstreamSnap(
        destination=destination, local_bind_port=int(u["LocalBindPort"]),
        local_bind_address=u.get("LocalBindAddress") or "127.0.0.1", datacenter=datacenter,
        chain=chain,
        target_endpoints=tuple((tid, target_endpoints(view, t)) for tid, t in sorted(chain.targets.items())))


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
    upstreams = tuple(upstream_snap(view, u) for u in p.get("Upstreams") or []
                      if u.get("DestinationType", "service") == "service")
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


def build_all(view: MeshView, leaf: Callable[[str], tuple[str, str]]) -> dict[str, ProxySnapshot | IngressSnapshot]:
    """proxy id -> snapshot, for every sidecar and every ingress gateway; `leaf(service)` returns
    (cert PEM, key PEM) for a service name."""
    out: dict[str, ProxySnapshot | IngressSnapshot] = {}
    for proxy in proxies(view):
        cert, key = leaf(proxy["Proxy"]["DestinationServiceName"])
        try:
            out[proxy["ID"]] = build_snapshot(view, proxy, cert, key)
        except ChainError as e:
            # Entries Consul would have refused: this proxy keeps the config it has (no new
            # snapshot), every other proxy is updated as usual.
            log.error("connect: proxy %s: %s", proxy["ID"], e)
    for gateway in ingress_gateways(view):
        try:
            snap = build_ingress(view, gateway)
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            # A malformed gateway registration must not stop every other proxy's updates; it gets
            # no snapshot, so its Envoy has no listener (closed, not open).
            log.error("connect: ingress gateway %s: %s", gateway.get("ID"), e)
            continue
        cert, key = leaf(gateway["Service"])
        out[gateway["ID"]] = replace(snap, leaf_cert_pem=cert, leaf_key_pem=key)
    return out


# --- ingress gateways -------------------------------------------------------------------------


def ingress_gateways(view: MeshView) -> list[dict[str, Any]]:
    """The ingress-gateway services that need a snapshot (those with a config entry)."""
    return [s for s in view.services if s.get("Kind") == ingress.KIND and view.lookup(ingress.KIND, s["Service"])]


def gateway_bind_addresses(gateway: dict[str, Any]) -> tuple[str, ...]:
    """Where Consul's ingress listeners listen: each `envoy_gateway_bind_addresses` address, plus
    the service's own address unless `envoy_gateway_no_default_bind` (Nomad sets both in bridge mode)."""
    config = (gateway.get("Proxy") or {}).get("Config") or {}
    binds = config.get("envoy_gateway_bind_addresses") or {}
    if not isinstance(binds, dict):
        raise ValueError("envoy_gateway_bind_addresses must be an object of {Address, Port}")
    addresses = {str(b.get("Address") or b.get("address") or "") for b in binds.values() if isinstance(b, dict)}
    if not config.get("envoy_gateway_no_default_bind"):
        addresses.add(gateway.get("Address") or "127.0.0.1")
    return tuple(sorted(a for a in addresses if a))


def build_ingress(view: MeshView, gateway: dict[str, Any], leaf_cert_pem: str = "",
                  leaf_key_pem: str = "") -> IngressSnapshot:
    """The gateway's snapshot; ValueError (or TypeError, KeyError) when its registration or entry is malformed."""
    entry = view.lookup(ingress.KIND, gateway["Service"]) or {}
    config = (gateway.get("Proxy") or {}).get("Config") or {}
    listeners = tuple(
        IngressListener(port=int(lst["Port"]), protocol=lst["Protocol"], targets=tuple(
            IngressTarget(name=svc["Name"], hosts=tuple(svc.get("Hosts") or ()),
                          endpoints=endpoints(view, svc["Name"]))
            for svc in lst.get("Services") or []))
        for lst in entry.get("Listeners") or [])
    return IngressSnapshot(
        proxy_id=gateway["ID"], service=gateway["Service"], datacenter=view.datacenter,
        trust_domain=view.trust_domain, bind_addresses=gateway_bind_addresses(gateway), listeners=listeners,
        roots_pem=view.roots_pem, leaf_cert_pem=leaf_cert_pem, leaf_key_pem=leaf_key_pem,
        connect_timeout_ms=int(config.get("connect_timeout_ms") or 5000),
    )
