"""LDS: the public listener (mTLS + RBAC → local_app), one listener per upstream, exposed paths."""
from __future__ import annotations

import functools
import re

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import any_pb2, wrappers_pb2

from nomadmesh.agent.connect.resources.clusters import exposed_cluster_name
from nomadmesh.agent.connect.resources.common import (
    LOCAL_APP,
    ROOTS_SECRET,
    ads_source,
    pack,
    sds_ref,
    socket_address,
    tls_params,
)
from nomadmesh.agent.connect.resources.rbac import http_rbac, network_rbac
from nomadmesh.agent.connect.resources.routes import route_name
from nomadmesh.agent.connect.snapshot import ExposePath, ProxySnapshot, UpstreamSnap
from nomadmesh.mesh.intentions import Intention


def _filter(name: str, config) -> lc_pb2.Filter:
    return lc_pb2.Filter(name=name, typed_config=pack(config))


def _tcp_proxy(stat_prefix: str, cluster: str) -> lc_pb2.Filter:
    return _filter("envoy.filters.network.tcp_proxy",
                   tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix, cluster=cluster))


def _http_filter(name: str, config) -> hcm_pb2.HttpFilter:
    return hcm_pb2.HttpFilter(name=name, typed_config=pack(config))


def _hcm(stat_prefix: str, routes: list[rc_pb2.Route], http_filters: list[hcm_pb2.HttpFilter],
         http2: bool = False) -> lc_pb2.Filter:
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix=stat_prefix,
        codec_type=hcm_pb2.HttpConnectionManager.HTTP2 if http2 else hcm_pb2.HttpConnectionManager.AUTO,
        route_config=route_pb2.RouteConfiguration(
            name=stat_prefix,
            virtual_hosts=[rc_pb2.VirtualHost(name=stat_prefix, domains=["*"], routes=routes)],
        ),
        http_filters=[*http_filters, _http_filter("envoy.filters.http.router", router_pb2.Router())],
    )
    return _filter("envoy.filters.network.http_connection_manager", hcm)


def _route(cluster: str, prefix: str | None = None, path: str | None = None) -> rc_pb2.Route:
    match = rc_pb2.RouteMatch(path=path) if path is not None else rc_pb2.RouteMatch(prefix=prefix or "/")
    return rc_pb2.Route(match=match, route=rc_pb2.RouteAction(cluster=cluster))


def public_listener_name(snap: ProxySnapshot) -> str:
    return f"public_listener:{snap.public_listener.address}:{snap.public_listener.port}"


@functools.lru_cache(maxsize=4096)
def _packed_rbac(intentions: tuple[Intention, ...], default_allow: bool, is_http: bool) -> any_pb2.Any:
    """The public listener's RBAC filter config, built once per set of intentions: every proxy of
    a destination shares it, and a wildcard intention gives every proxy the same one. The Any is
    only ever copied into a filter, never changed."""
    return pack(http_rbac(intentions, default_allow) if is_http else network_rbac(intentions, default_allow))


def public_listener(snap: ProxySnapshot) -> listener_pb2.Listener:
    """mTLS requiring a client certificate from our roots, then intentions, then the app."""
    tls = tls_pb2.DownstreamTlsContext(
        require_client_certificate=wrappers_pb2.BoolValue(value=True),
        common_tls_context=tls_pb2.CommonTlsContext(
            tls_params=tls_params(),
            tls_certificate_sds_secret_configs=[sds_ref(snap.service)],
            validation_context_sds_secret_config=sds_ref(ROOTS_SECRET),
            alpn_protocols=["http/1.1"] if snap.protocol == "http" else [],
        ),
    )
    rbac = _packed_rbac(snap.intentions, snap.default_allow, snap.protocol == "http")
    if snap.protocol == "http":
        filters = [_hcm("public_listener", [_route(LOCAL_APP)],
                        [hcm_pb2.HttpFilter(name="envoy.filters.http.rbac", typed_config=rbac)])]
    else:
        filters = [
            lc_pb2.Filter(name="envoy.filters.network.rbac", typed_config=rbac),
            _tcp_proxy("public_listener", LOCAL_APP),
        ]
    return listener_pb2.Listener(
        name=public_listener_name(snap),
        address=socket_address(snap.public_listener.address, snap.public_listener.port),
        traffic_direction=base_pb2.INBOUND,
        filter_chains=[lc_pb2.FilterChain(
            filters=filters,
            transport_socket=base_pb2.TransportSocket(name="envoy.transport_sockets.tls",
                                                      typed_config=pack(tls)),
        )],
    )


def _rds_hcm(stat_prefix: str, route_config: str) -> lc_pb2.Filter:
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix=stat_prefix,
        codec_type=hcm_pb2.HttpConnectionManager.AUTO,
        rds=hcm_pb2.Rds(route_config_name=route_config, config_source=ads_source()),
        http_filters=[_http_filter("envoy.filters.http.router", router_pb2.Router())],
    )
    return _filter("envoy.filters.network.http_connection_manager", hcm)


def upstream_listener(snap: ProxySnapshot, up: UpstreamSnap) -> listener_pb2.Listener:
    """HTTP-like chains: an HTTP connection manager whose routes come over RDS (routes.py);
    tcp: a tcp_proxy to the chain's one resolver target (after redirect and default subset)."""
    stat = f"upstream.{up.destination}.default.default.{snap.upstream_datacenter(up)}"
    chain = snap.chain_of(up)
    if chain.is_http:
        network_filter = _rds_hcm(stat, route_name(up))
    else:
        network_filter = _tcp_proxy(stat, chain.resolver_target(chain.start_node).sni)
    return listener_pb2.Listener(
        name=f"{up.destination}:{up.local_bind_address}:{up.local_bind_port}",
        address=socket_address(up.local_bind_address, up.local_bind_port),
        traffic_direction=base_pb2.OUTBOUND,
        filter_chains=[lc_pb2.FilterChain(filters=[network_filter])],
    )


def exposed_listener_name(path: ExposePath) -> str:
    return "exposed_path_" + re.sub(r"[^A-Za-z0-9]", "", path.path)


def exposed_listener(snap: ProxySnapshot, path: ExposePath) -> listener_pb2.Listener:
    """Plain HTTP, only this exact path, for the agent's health checks."""
    cluster = LOCAL_APP if path.local_path_port == snap.local_app.port else exposed_cluster_name(
        path.local_path_port)
    name = exposed_listener_name(path)
    return listener_pb2.Listener(
        name=name,
        address=socket_address("0.0.0.0", path.listener_port),
        traffic_direction=base_pb2.INBOUND,
        filter_chains=[lc_pb2.FilterChain(filters=[
            _hcm(name, [_route(cluster, path=path.path)], [], http2=path.protocol == "http2")
        ])],
    )


def listeners_from_snapshot(snap: ProxySnapshot) -> list[listener_pb2.Listener]:
    out = [public_listener(snap)]
    out += [upstream_listener(snap, up) for up in snap.upstreams]
    out += [exposed_listener(snap, p) for p in snap.exposed_paths]
    return out
