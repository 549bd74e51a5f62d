"""build_resources: names, SNI, SAN checks, filter order, TLS, exposed paths; golden files.

Golden files live in tests/golden/<listeners|clusters|endpoints>/<case>.json (certificates are not in
them: listeners and clusters name SDS secrets, and the trust domain is pinned). Rewrite them after an intended change
with `NOMADMESH_UPDATE_GOLDEN=1 pytest tests/unit` and review the diff.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as net_rbac_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from nomadmesh.agent.connect.resources import CLUSTER, ENDPOINT, LISTENER, SECRET, build_resources
from nomadmesh.agent.connect.snapshot import ExposePath, ProxySnapshot
from nomadmesh.mesh.intentions import HTTPMatch, Intention, Permission
from support.connect_support import CLUSTER_ID, by_name as _by_name, pinned_ca, snapshot, unpack as _unpack, upstream
from support.golden import assert_golden

TD = f"{CLUSTER_ID}.consul"
SNI_INVOICE = f"invoice.default.dc1.internal.{TD}"


def _base() -> ProxySnapshot:
    return snapshot("order", public_port=21000, app_port=5000,
                    upstreams=(upstream("invoice", 6001, (("10.0.0.2", 21001), ("10.0.0.3", 21002))),))


CASES: dict[str, Callable[[], ProxySnapshot]] = {
    "tcp-upstream": _base,
    "tcp-intentions": lambda: replace(_base(), intentions=(
        Intention("web", "order", "deny"), Intention("*", "order", "allow")), default_allow=False),
    "http-l7": lambda: replace(_base(), protocol="http", intentions=(
        Intention("web", "order", None, (Permission("deny", HTTPMatch(path_prefix="/admin")),)),)),
    "exposed-paths": lambda: replace(_base(), upstreams=(), exposed_paths=(
        ExposePath("/health", 5000, 21500), ExposePath("/metrics", 9102, 21501, "http2"))),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("type_url", [LISTENER, CLUSTER, ENDPOINT])
def test_golden(case: str, type_url: str) -> None:
    """The resources of each case equal tests/golden/<type>/<case>.json."""
    assert_golden(type_url, case, build_resources(CASES[case]())[type_url])


def test_public_listener_requires_a_client_cert_and_runs_rbac_before_tcp_proxy() -> None:
    lst = _by_name(build_resources(_base())[LISTENER])["public_listener:0.0.0.0:21000"]
    assert lst.address.socket_address.address == "0.0.0.0"
    assert lst.address.socket_address.port_value == 21000
    (chain,) = lst.filter_chains
    assert [f.name for f in chain.filters] == ["envoy.filters.network.rbac", "envoy.filters.network.tcp_proxy"]
    assert _unpack(chain.filters[0].typed_config, net_rbac_pb2.RBAC).stat_prefix == "connect_authz"
    assert _unpack(chain.filters[1].typed_config, tcp_proxy_pb2.TcpProxy).cluster == "local_app"
    tls = _unpack(chain.transport_socket.typed_config, tls_pb2.DownstreamTlsContext)
    assert tls.require_client_certificate.value is True
    ctx = tls.common_tls_context
    assert [s.name for s in ctx.tls_certificate_sds_secret_configs] == ["order"]
    assert ctx.validation_context_sds_secret_config.name == "ROOTCA"


def test_http_protocol_puts_http_rbac_first_and_router_last() -> None:
    lst = _by_name(build_resources(CASES["http-l7"]())[LISTENER])["public_listener:0.0.0.0:21000"]
    (f,) = lst.filter_chains[0].filters
    hcm = _unpack(f.typed_config, hcm_pb2.HttpConnectionManager)
    assert [h.name for h in hcm.http_filters] == ["envoy.filters.http.rbac", "envoy.filters.http.router"]
    assert hcm.route_config.virtual_hosts[0].routes[0].route.cluster == "local_app"


def test_upstream_listener_cluster_sni_and_san_match() -> None:
    res = build_resources(_base())
    lst = _by_name(res[LISTENER])["invoice:127.0.0.1:6001"]
    assert lst.address.socket_address.address == "127.0.0.1"
    tcp = _unpack(lst.filter_chains[0].filters[0].typed_config, tcp_proxy_pb2.TcpProxy)
    assert tcp.stat_prefix == "upstream.invoice.default.default.dc1"
    assert tcp.cluster == SNI_INVOICE
    cluster = _by_name(res[CLUSTER])[SNI_INVOICE]
    assert cluster.type == cluster_pb2.Cluster.EDS
    tls = _unpack(cluster.transport_socket.typed_config, tls_pb2.UpstreamTlsContext)
    assert tls.sni == SNI_INVOICE
    combined = tls.common_tls_context.combined_validation_context
    (san,) = combined.default_validation_context.match_typed_subject_alt_names
    assert san.matcher.exact == f"spiffe://{TD}/ns/default/dc/dc1/svc/invoice"
    assert combined.validation_context_sds_secret_config.name == "ROOTCA"
    cla = _by_name(res[ENDPOINT])[SNI_INVOICE]
    addrs = [(e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
             for e in cla.endpoints[0].lb_endpoints]
    assert addrs == [("10.0.0.2", 21001), ("10.0.0.3", 21002)]


def test_upstream_datacenter_changes_sni_and_identity() -> None:
    snap = replace(_base(), upstreams=(replace(upstream("invoice", 6001), datacenter="dc2"),))
    res = build_resources(snap)
    assert f"invoice.default.dc2.internal.{TD}" in _by_name(res[CLUSTER])


def test_secrets_are_the_leaf_named_after_the_service_and_rootca() -> None:
    snap = _base()
    secrets = _by_name(build_resources(snap)[SECRET])
    assert set(secrets) == {"order", "ROOTCA"}
    assert secrets["order"].tls_certificate.certificate_chain.inline_string == snap.leaf_cert_pem
    assert secrets["order"].tls_certificate.private_key.inline_string == snap.leaf_key_pem
    assert secrets["ROOTCA"].validation_context.trusted_ca.inline_string == pinned_ca().root_pem


def test_exposed_paths_route_only_their_path() -> None:
    res = build_resources(CASES["exposed-paths"]())
    listeners = _by_name(res[LISTENER])
    assert {"exposed_path_health", "exposed_path_metrics"} <= set(listeners)
    hcm = _unpack(listeners["exposed_path_health"].filter_chains[0].filters[0].typed_config,
                  hcm_pb2.HttpConnectionManager)
    (route,) = hcm.route_config.virtual_hosts[0].routes
    assert (route.match.path, route.route.cluster) == ("/health", "local_app")
    assert listeners["exposed_path_health"].address.socket_address.port_value == 21500
    assert "exposed_cluster_9102" in _by_name(res[CLUSTER])


def test_snapshot_version_is_a_content_hash() -> None:
    a = _base()
    b = replace(a)
    assert a.version == b.version
    assert replace(a, default_allow=False).version != a.version
    with pytest.raises(ValueError, match="other destinations"):
        replace(a, intentions=(Intention("web", "billing", "deny"),))
