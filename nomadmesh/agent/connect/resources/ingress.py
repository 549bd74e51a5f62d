"""Pure builders for an ingress gateway: IngressSnapshot → Envoy resources (Consul's
listeners_ingress.go, clusters and endpoints for the gateway kind).

* LDS: one plaintext listener per config-entry listener and bind address. tcp: a tcp_proxy to the
  one service's cluster. http: an HTTP connection manager whose virtual hosts route by Host —
  the service's `hosts`, or Consul's default `<service>.ingress.*` (with and without `:<port>`).
* CDS: one EDS cluster per destination, named by its SNI, dialled over mTLS with the *gateway's*
  leaf, accepting only the destination's SPIFFE ID — so the destination sidecar's RBAC sees the
  gateway as the source, and `intent deny <gateway> <service>` stops the traffic.
* EDS: the destination's healthy sidecars; SDS: the gateway's leaf and the roots.
"""
from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import duration_pb2
from google.protobuf.message import Message

from nomadmesh.agent.connect.ingress_snapshot import IngressListener, IngressSnapshot, IngressTarget
from nomadmesh.agent.connect.resources.clusters import mtls_cluster
from nomadmesh.agent.connect.resources.common import CLUSTER, ENDPOINT, LISTENER, SECRET, pack, socket_address
from nomadmesh.agent.connect.resources.endpoints import load_assignment
from nomadmesh.agent.connect.resources.secrets import leaf_and_roots


def listener_name(protocol: str, address: str, port: int) -> str:
    return f"{protocol}:{address}:{port}"


def default_hosts(service: str, port: int) -> list[str]:
    """Consul's Host values for a service without `hosts` on an http listener."""
    return [f"{service}.ingress.*", f"{service}.ingress.*:{port}"]


def _domains(target: IngressTarget, port: int) -> list[str]:
    if not target.hosts:
        return default_hosts(target.name, port)
    return [d for h in target.hosts for d in ((h,) if h == "*" else (h, f"{h}:{port}"))]


def _tcp_chain(snap: IngressSnapshot, listener: IngressListener) -> lc_pb2.FilterChain:
    (target,) = listener.targets  # the entry's validation allows exactly one service on a tcp listener
    stat = f"ingress.{target.name}.default.default.{snap.datacenter}"
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=stat, cluster=snap.cluster_name(target.name))
    return lc_pb2.FilterChain(filters=[lc_pb2.Filter(name="envoy.filters.network.tcp_proxy", typed_config=pack(proxy))])


def _http_chain(snap: IngressSnapshot, listener: IngressListener) -> lc_pb2.FilterChain:
    name = f"ingress_http_{listener.port}"
    hosts = [rc_pb2.VirtualHost(
        name=f"{t.name}:{listener.port}", domains=_domains(t, listener.port),
        routes=[rc_pb2.Route(match=rc_pb2.RouteMatch(prefix="/"),
                             route=rc_pb2.RouteAction(cluster=snap.cluster_name(t.name)))],
    ) for t in listener.targets]
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix=name,
        codec_type=hcm_pb2.HttpConnectionManager.AUTO,
        route_config=route_pb2.RouteConfiguration(name=name, virtual_hosts=hosts),
        http_filters=[hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=pack(router_pb2.Router()))],
    )
    return lc_pb2.FilterChain(filters=[
        lc_pb2.Filter(name="envoy.filters.network.http_connection_manager", typed_config=pack(hcm))])


def ingress_listeners(snap: IngressSnapshot) -> list[listener_pb2.Listener]:
    out = []
    for address in snap.bind_addresses:
        for listener in snap.listeners:
            chain = _tcp_chain(snap, listener) if listener.protocol == "tcp" else _http_chain(snap, listener)
            out.append(listener_pb2.Listener(
                name=listener_name(listener.protocol, address, listener.port),
                address=socket_address(address, listener.port),
                traffic_direction=base_pb2.OUTBOUND,  # toward the mesh, as Consul marks it
                filter_chains=[chain],
            ))
    return out


def ingress_clusters(snap: IngressSnapshot) -> list[Message]:
    timeout = duration_pb2.Duration()
    timeout.FromMilliseconds(snap.connect_timeout_ms)
    return [mtls_cluster(snap.cluster_name(name), snap.destination_uri(name), snap.service, timeout)
            for name in sorted(snap.targets())]


def ingress_endpoints(snap: IngressSnapshot) -> list[Message]:
    return [load_assignment(snap.cluster_name(name), target.endpoints)
            for name, target in sorted(snap.targets().items())]


def build_ingress_resources(snap: IngressSnapshot) -> dict[str, list[Message]]:
    return {
        CLUSTER: ingress_clusters(snap),
        ENDPOINT: ingress_endpoints(snap),
        SECRET: list(leaf_and_roots(snap.service, snap.leaf_cert_pem, snap.leaf_key_pem, snap.roots_pem)),
        LISTENER: list(ingress_listeners(snap)),
    }
