"""Ingress gateway xDS: the pure builders (resources/ingress.py) and the snapshot from the catalog
(proxies.build_ingress). Structural checks, plus golden files like test_connect_resources's
(tests/golden/<type>/ingress-*.json; rewrite with NOMADMESH_UPDATE_GOLDEN=1 and review)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from nomadmesh.agent.connect.cache import SnapshotCache, check_consistent
from nomadmesh.agent.connect.ingress_snapshot import IngressListener, IngressSnapshot, IngressTarget
from nomadmesh.agent.connect.proxies import MeshView, build_all
from nomadmesh.agent.connect.resources import CLUSTER, ENDPOINT, LISTENER, SECRET, build_resources
from support.connect_support import CLUSTER_ID, DC, pinned_ca
from support.golden import assert_golden

TD = f"{CLUSTER_ID}.consul"
SNI_ORDER = f"order.default.dc1.internal.{TD}"


def gateway(*listeners: IngressListener, binds: tuple[str, ...] = ("0.0.0.0",)) -> IngressSnapshot:
    ca = pinned_ca()
    leaf = ca.sign_leaf("ingress", DC)
    return IngressSnapshot(
        proxy_id="_nomad-task-x-group-ingress-ingress-inbound", service="ingress", datacenter=DC,
        trust_domain=ca.trust_domain, bind_addresses=binds, listeners=listeners, roots_pem=ca.root_pem,
        leaf_cert_pem=leaf.cert_pem, leaf_key_pem=leaf.key_pem)


ORDER = IngressTarget("order", endpoints=(("10.0.0.2", 21001), ("10.0.0.3", 21002)))
CASES: dict[str, Callable[[], IngressSnapshot]] = {
    "ingress-tcp": lambda: gateway(IngressListener(8080, "tcp", (ORDER,))),
    "ingress-http": lambda: gateway(IngressListener(8081, "http", (
        ORDER, IngressTarget("invoice", hosts=("invoice.example.com", "*"), endpoints=(("10.0.0.4", 21003),))))),
}


def _unpack(any_msg: Any, cls: Any) -> Any:
    msg = cls()
    assert any_msg.Unpack(msg), f"not a {cls.__name__}: {any_msg.type_url}"
    return msg


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("type_url", [LISTENER, CLUSTER, ENDPOINT])
def test_golden(case: str, type_url: str) -> None:
    """The resources of each case equal tests/golden/<type>/<case>.json."""
    assert_golden(type_url, case, build_resources(CASES[case]())[type_url])


def test_tcp_listener_is_plaintext_and_proxies_to_the_destination_cluster() -> None:
    res = build_resources(CASES["ingress-tcp"]())
    (lst,) = res[LISTENER]
    assert lst.name == "tcp:0.0.0.0:8080"
    assert (lst.address.socket_address.address, lst.address.socket_address.port_value) == ("0.0.0.0", 8080)
    (chain,) = lst.filter_chains
    assert not chain.HasField("transport_socket"), "clients speak plain TCP/HTTP to the gateway"
    assert _unpack(chain.filters[0].typed_config, tcp_proxy_pb2.TcpProxy).cluster == SNI_ORDER
    assert check_consistent(res) == []


def test_upstream_cluster_uses_the_gateways_own_identity_and_checks_the_destinations() -> None:
    (cluster,) = build_resources(CASES["ingress-tcp"]())[CLUSTER]
    assert cluster.name == SNI_ORDER and cluster.type == cluster_pb2.Cluster.EDS
    tls = _unpack(cluster.transport_socket.typed_config, tls_pb2.UpstreamTlsContext)
    assert tls.sni == SNI_ORDER
    ctx = tls.common_tls_context
    # The gateway presents its own leaf: the destination's RBAC sees `ingress` as the source.
    assert [s.name for s in ctx.tls_certificate_sds_secret_configs] == ["ingress"]
    (san,) = ctx.combined_validation_context.default_validation_context.match_typed_subject_alt_names
    assert san.matcher.exact == f"spiffe://{TD}/ns/default/dc/dc1/svc/order"
    assert cluster.connect_timeout.ToMilliseconds() == 5000
    secrets = {s.name for s in build_resources(CASES["ingress-tcp"]())[SECRET]}
    assert secrets == {"ingress", "ROOTCA"}


def test_http_listener_routes_by_host_with_consuls_default_hosts() -> None:
    (lst,) = build_resources(CASES["ingress-http"]())[LISTENER]
    hcm = _unpack(lst.filter_chains[0].filters[0].typed_config, hcm_pb2.HttpConnectionManager)
    hosts = {vh.name: (list(vh.domains), vh.routes[0].route.cluster) for vh in hcm.route_config.virtual_hosts}
    assert hosts["order:8081"] == (["order.ingress.*", "order.ingress.*:8081"], SNI_ORDER)
    assert hosts["invoice:8081"][0] == ["invoice.example.com", "invoice.example.com:8081", "*"]


def test_one_listener_per_bind_address_and_endpoints_follow_the_snapshot() -> None:
    snap = gateway(IngressListener(8080, "tcp", (ORDER,)), binds=("0.0.0.0", "127.0.0.1"))
    assert sorted(lst.name for lst in build_resources(snap)[LISTENER]) == ["tcp:0.0.0.0:8080", "tcp:127.0.0.1:8080"]
    (cla,) = build_resources(snap)[ENDPOINT]
    got = [(e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
           for e in cla.endpoints[0].lb_endpoints]
    assert got == [("10.0.0.2", 21001), ("10.0.0.3", 21002)]


# --- from the catalog -------------------------------------------------------------------------

GW_ID = "_nomad-task-aaaa-group-ingress-ingress-inbound"


def view(order_healthy: bool = True, with_entry: bool = True) -> MeshView:
    ca = pinned_ca()
    gw = {"ID": GW_ID, "Service": "ingress", "Kind": "ingress-gateway", "Address": "127.0.0.1", "Port": 8080,
          "Proxy": {"Config": {"envoy_gateway_no_default_bind": True, "connect_timeout_ms": 3000,
                               "envoy_gateway_bind_addresses": {"order": {"Address": "0.0.0.0", "Port": 8080}}}}}
    side = {"ID": "order-sidecar", "Service": "order-sidecar-proxy", "Kind": "connect-proxy", "Address": "127.0.0.1",
            "Port": 25000, "TaggedAddresses": {"nomad_bridge": {"Address": "10.1.0.5", "Port": 25000}},
            "Proxy": {"DestinationServiceName": "order", "LocalServicePort": 5000}}
    checks = ({"ServiceID": "order-sidecar", "Status": "passing" if order_healthy else "critical"},)
    entry = {"Kind": "ingress-gateway", "Name": "ingress", "Listeners": [
        {"Port": 8080, "Protocol": "tcp", "Services": [{"Name": "order", "Hosts": None}]}]}
    return MeshView(services=(gw, side), checks=checks,
                    entries={"ingress-gateway/ingress": entry} if with_entry else {},
                    datacenter=DC, trust_domain=ca.trust_domain, roots_pem=ca.root_pem, default_allow=True)


def leaf(service: str) -> tuple[str, str]:
    signed = pinned_ca().sign_leaf(service, DC)
    return signed.cert_pem, signed.key_pem


def test_gateway_snapshot_from_its_registration_entry_and_the_healthy_sidecars() -> None:
    snaps = build_all(view(), leaf)
    snap = snaps[GW_ID]
    assert isinstance(snap, IngressSnapshot)
    assert snap.service == "ingress" and snap.bind_addresses == ("0.0.0.0",) and snap.connect_timeout_ms == 3000
    assert snap.listeners == (IngressListener(8080, "tcp", (IngressTarget("order", (), (("10.1.0.5", 25000),)),)),)
    assert "order-sidecar" in snaps  # the sidecars keep their own snapshots
    # An unhealthy destination leaves the gateway without endpoints (and its cache entry consistent).
    sick = build_all(view(order_healthy=False), leaf)[GW_ID]
    assert isinstance(sick, IngressSnapshot) and sick.listeners[0].targets[0].endpoints == ()
    SnapshotCache().set(GW_ID, sick)


def test_no_snapshot_for_a_gateway_without_its_config_entry() -> None:
    assert GW_ID not in build_all(view(with_entry=False), leaf)


def test_a_malformed_gateway_registration_gets_no_snapshot_and_stops_no_other_proxy() -> None:
    bad = view()
    services = tuple(dict(s, Proxy={"Config": {"envoy_gateway_bind_addresses": "0.0.0.0:8080"}})
                     if s["ID"] == GW_ID else s for s in bad.services)
    snaps = build_all(MeshView(services, bad.checks, bad.entries, bad.datacenter, bad.trust_domain,
                               bad.roots_pem, bad.default_allow), leaf)
    assert GW_ID not in snaps and "order-sidecar" in snaps
