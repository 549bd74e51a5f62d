"""Envoy resources for upstreams with a discovery chain (resources/routes.py, clusters.py,
endpoints.py, listeners.py): an HTTP upstream is an HTTP connection manager on RDS whose route
configuration comes from the router / splitter / resolver; one EDS cluster per resolver target
named by its SNI; a tcp upstream is a tcp_proxy to its resolver's target. Golden files like
test_connect_resources's (tests/golden/<type>/l7-*.json; rewrite with NOMADMESH_UPDATE_GOLDEN=1
and review), plus the checks that say what the goldens mean."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from nomadmesh.agent.connect.cache import check_consistent
from nomadmesh.agent.connect.proxies import MeshView, build_all, target_endpoints
from nomadmesh.agent.connect.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, build_resources
from nomadmesh.agent.connect.snapshot import ProxySnapshot, UpstreamSnap
from nomadmesh.agent.consul.discovery_chain import compile_chain
from support.connect_support import CLUSTER_ID, by_name as _by_name, chain_upstream, snapshot, unpack as _unpack
from support.golden import assert_golden

TD = f"{CLUSTER_ID}.consul"
HTTP = [{"Kind": "service-defaults", "Name": n, "Protocol": "http"} for n in ("api", "admin")]
SUBSETS = {"Kind": "service-resolver", "Name": "api", "ConnectTimeout": "3s", "Subsets": {
    "v1": {"Filter": 'Service.Meta.version == "1"'}, "v2": {"Filter": 'Service.Meta.version == "2"'}}}
ENDPOINTS = {"v1.api.default.default.dc1": (("10.0.0.1", 21001),), "v2.api.default.default.dc1": (("10.0.0.2", 21002),),
             "api.default.default.dc1": (("10.0.0.1", 21001), ("10.0.0.2", 21002)),
             "admin.default.default.dc1": (("10.0.0.3", 21003),), "v2.api.default.default.dc2": (("10.1.0.1", 21001),)}


def with_chain(*entries: dict[str, Any]) -> ProxySnapshot:
    up = chain_upstream("api", 7000, entries, ENDPOINTS)
    return snapshot("web", public_port=21000, app_port=5000, upstreams=(up,))


ROUTER = {"Kind": "service-router", "Name": "api", "Routes": [
    {"Match": {"HTTP": {"PathExact": "/health"}}, "Destination": {"Service": "admin", "RequestTimeout": "2s"}},
    {"Match": {"HTTP": {"PathRegex": "/v[0-9]+/.*", "Methods": ["GET", "HEAD"],
                        "Header": [{"Name": "x-canary", "Exact": "1"}, {"Name": "x-debug", "Present": True,
                                                                      "Invert": True}],
                        "QueryParam": [{"Name": "beta", "Regex": "^(1|true)$"}]}},
     "Destination": {"ServiceSubset": "v2", "NumRetries": 3, "RetryOnConnectFailure": True,
                     "RetryOnStatusCodes": [503, 504]}},
    {"Match": {"HTTP": {"PathPrefix": "/old/"}}, "Destination": {"PrefixRewrite": "/new/"}},
]}
SPLIT = {"Kind": "service-splitter", "Name": "api", "Splits": [
    {"Weight": 90.5, "ServiceSubset": "v1"}, {"Weight": 9.5, "ServiceSubset": "v2"}]}

LB = {"Policy": "ring_hash", "RingHashConfig": {"MinimumRingSize": 1024, "MaximumRingSize": 8192}, "HashPolicies": [
    {"Field": "header", "FieldValue": "x-user"}, {"Field": "cookie", "FieldValue": "sid", "CookieConfig": {
        "Session": True, "Path": "/"}}, {"SourceIP": True, "Terminal": True}]}
HEADERS_SPLIT = {"Kind": "service-splitter", "Name": "api", "Splits": [
    {"Weight": 50, "ServiceSubset": "v1", "RequestHeaders": {"Set": {"x-version": "1"}}},
    {"Weight": 50, "ServiceSubset": "v2", "RequestHeaders": {"Add": {"x-canary": "yes"}, "Remove": ["x-debug"]},
     "ResponseHeaders": {"Set": {"x-served-by": "v2"}}}]}

CASES: dict[str, Callable[[], ProxySnapshot]] = {
    "l7-lb-headers": lambda: with_chain(*HTTP, {**SUBSETS, "LoadBalancer": LB}, HEADERS_SPLIT),
    "l7-split": lambda: with_chain(*HTTP, SUBSETS, SPLIT),
    "l7-router": lambda: with_chain(*HTTP, SUBSETS, ROUTER, SPLIT),
    "l7-tcp-subset-failover": lambda: with_chain({**SUBSETS, "DefaultSubset": "v2", "Failover": {
        "v2": {"Targets": [{"ServiceSubset": "v1"}, {"Service": "api", "Datacenter": "dc2"}]}}}),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("type_url", [LISTENER, CLUSTER, ENDPOINT, ROUTE])
def test_golden(case: str, type_url: str) -> None:
    assert_golden(type_url, case, build_resources(CASES[case]())[type_url])


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_case_is_consistent(case: str) -> None:
    """Every route names a cluster that exists, every listener's RDS name a route configuration."""
    assert check_consistent(build_resources(CASES[case]())) == []


def test_http_upstream_listener_asks_rds_for_a_route_named_after_the_upstream() -> None:
    res = build_resources(CASES["l7-split"]())
    lst = _by_name(res[LISTENER])["api:127.0.0.1:7000"]
    hcm = _unpack(lst.filter_chains[0].filters[0].typed_config, hcm_pb2.HttpConnectionManager)
    assert hcm.rds.route_config_name == "api" and hcm.rds.config_source.HasField("ads")
    assert hcm.stat_prefix == "upstream.api.default.default.dc1"
    (route,) = _by_name(res[ROUTE])["api"].virtual_hosts[0].routes
    legs = [(c.name, c.weight.value) for c in route.route.weighted_clusters.clusters]
    assert legs == [(f"v1.api.default.dc1.internal.{TD}", 9050), (f"v2.api.default.dc1.internal.{TD}", 950)]


def test_each_subset_is_a_cluster_with_its_sni_the_services_identity_and_the_resolver_timeout() -> None:
    res = build_resources(CASES["l7-split"]())
    clusters = _by_name(res[CLUSTER])
    for subset in ("v1", "v2"):
        cluster = clusters[f"{subset}.api.default.dc1.internal.{TD}"]
        tls = _unpack(cluster.transport_socket.typed_config, tls_pb2.UpstreamTlsContext)
        assert tls.sni == cluster.name
        (san,) = tls.common_tls_context.combined_validation_context.default_validation_context \
            .match_typed_subject_alt_names
        assert san.matcher.exact == f"spiffe://{TD}/ns/default/dc/dc1/svc/api"
        assert cluster.connect_timeout.seconds == 3
    v2 = _by_name(res[ENDPOINT])[f"v2.api.default.dc1.internal.{TD}"]
    assert [e.endpoint.address.socket_address.address for e in v2.endpoints[0].lb_endpoints] == ["10.0.0.2"]


def test_router_matches_rewrites_timeouts_and_retries() -> None:
    routes = _by_name(build_resources(CASES["l7-router"]())[ROUTE])["api"].virtual_hosts[0].routes
    assert [r.match.WhichOneof("path_specifier") for r in routes] == ["path", "safe_regex", "prefix", "prefix"]
    health, canary, old, catch_all = routes
    assert health.route.cluster == f"admin.default.dc1.internal.{TD}" and health.route.timeout.seconds == 2
    assert canary.route.cluster == f"v2.api.default.dc1.internal.{TD}"
    assert [(h.name, h.invert_match) for h in canary.match.headers] == [
        ("x-canary", False), ("x-debug", True), (":method", False)]
    assert canary.match.headers[2].string_match.safe_regex.regex == "GET|HEAD"
    assert canary.match.query_parameters[0].string_match.safe_regex.regex == "^(1|true)$"
    retry = canary.route.retry_policy
    assert (retry.retry_on, retry.num_retries.value, list(retry.retriable_status_codes)) == (
        "connect-failure,retriable-status-codes", 3, [503, 504])
    assert old.route.prefix_rewrite == "/new/" and old.match.prefix == "/old/"
    assert catch_all.match.prefix == "/" and len(catch_all.route.weighted_clusters.clusters) == 2


def test_ring_hash_balancer_and_header_changes_per_leg() -> None:
    res = build_resources(CASES["l7-lb-headers"]())
    for cluster in res[CLUSTER]:
        if cluster.name.startswith(("v1.api", "v2.api")):
            assert cluster.lb_policy == cluster.RING_HASH
            assert (cluster.ring_hash_lb_config.minimum_ring_size.value,
                    cluster.ring_hash_lb_config.maximum_ring_size.value) == (1024, 8192)
    (route,) = _by_name(res[ROUTE])["api"].virtual_hosts[0].routes
    policies = route.route.hash_policy
    assert [p.WhichOneof("policy_specifier") for p in policies] == ["header", "cookie", "connection_properties"]
    assert policies[1].cookie.name == "sid" and policies[1].cookie.HasField("ttl") and policies[2].terminal
    v1, v2 = route.route.weighted_clusters.clusters
    option = base_pb2.HeaderValueOption
    assert [(h.header.key, h.header.value, h.append_action) for h in v1.request_headers_to_add] == [
        ("x-version", "1", option.OVERWRITE_IF_EXISTS_OR_ADD)]  # Set overwrites
    assert [(h.header.key, h.append_action) for h in v2.request_headers_to_add] == [
        ("x-canary", option.APPEND_IF_EXISTS_OR_ADD)]  # Add appends
    assert list(v2.request_headers_to_remove) == ["x-debug"]
    assert [h.header.key for h in v2.response_headers_to_add] == ["x-served-by"]


def test_tcp_upstream_proxies_to_the_default_subset_and_fails_over_by_priority() -> None:
    res = build_resources(CASES["l7-tcp-subset-failover"]())
    assert res[ROUTE] == []
    lst = _by_name(res[LISTENER])["api:127.0.0.1:7000"]
    tcp = _unpack(lst.filter_chains[0].filters[0].typed_config, tcp_proxy_pb2.TcpProxy)
    assert tcp.cluster == f"v2.api.default.dc1.internal.{TD}"
    cla = _by_name(res[ENDPOINT])[tcp.cluster]
    assert [(p.priority, [e.endpoint.address.socket_address.address for e in p.lb_endpoints])
            for p in cla.endpoints] == [(0, ["10.0.0.2"]), (1, ["10.0.0.1"]), (2, ["10.1.0.1"])]
    tls = _unpack(_by_name(res[CLUSTER])[tcp.cluster].transport_socket.typed_config, tls_pb2.UpstreamTlsContext)
    sans = [s.matcher.exact for s in
            tls.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names]
    assert sans == [f"spiffe://{TD}/ns/default/dc/dc1/svc/api", f"spiffe://{TD}/ns/default/dc/dc2/svc/api"]


def test_two_upstreams_of_one_service_share_clusters_and_routes_and_another_dc_has_its_own() -> None:
    snap = CASES["l7-split"]()
    (up,) = snap.upstreams
    snap = replace(snap, upstreams=(up, replace(up, local_bind_port=7001), replace(up, local_bind_port=7002,
                                                                                  datacenter="dc2")))
    res = build_resources(snap)
    assert check_consistent(res) == []
    assert sorted(r.name for r in res[ROUTE]) == ["api", "api?dc=dc2"]
    assert len([lst for lst in res[LISTENER] if lst.name.startswith("api:")]) == 3


def test_an_upstream_without_a_chain_is_the_default_chain() -> None:
    """A snapshot built without entries gives what it gave before chains existed."""
    plain = snapshot("web", upstreams=(UpstreamSnap("api", 7000, endpoints=(("10.0.0.1", 21001),)),))
    compiled = replace(plain, upstreams=(with_chain().upstreams[0],))
    compiled = replace(compiled, upstreams=(replace(compiled.upstreams[0], target_endpoints=(
        ("api.default.default.dc1", (("10.0.0.1", 21001),)),)),))
    a, b = build_resources(plain), build_resources(compiled)
    assert all(sorted(map(str, a[t])) == sorted(map(str, b[t])) for t in (LISTENER, CLUSTER, ENDPOINT, ROUTE))


# --- which instances a subset selects (proxies.target_endpoints) ------------------------------


def _sidecar(sid: str, port: int, tags: list[str], meta: dict[str, str]) -> dict[str, Any]:
    return {"ID": sid, "Service": "api-sidecar-proxy", "Kind": "connect-proxy", "Address": "10.0.0.9", "Port": port,
            "Tags": tags, "Meta": meta, "Proxy": {"DestinationServiceName": "api", "LocalServicePort": 8080}}


def test_subsets_select_by_tags_and_meta_and_count_warning_as_healthy_unless_only_passing() -> None:
    services = (_sidecar("a", 1, ["v1"], {"version": "1"}), _sidecar("b", 2, ["v2", "canary"], {"version": "2"}),
                _sidecar("c", 3, ["v2"], {"version": "2"}), _sidecar("d", 4, ["v2"], {"version": "2"}))
    checks = ({"ServiceID": "a", "Status": "passing"}, {"ServiceID": "b", "Status": "passing"},
              {"ServiceID": "c", "Status": "warning"}, {"ServiceID": "d", "Status": "critical"})
    resolver = {"Kind": "service-resolver", "Name": "api", "Subsets": {
        "v1": {"Filter": 'Service.Meta.version == "1"'}, "v2": {"Filter": 'Service.Meta.version == "2"'},
        "canary": {"Filter": '"canary" in Service.Tags'},
        "v2-strict": {"Filter": 'Service.Meta.version == "2"', "OnlyPassing": True},
        "broken": {"Filter": "Service.Nope == 1"}}}
    view = MeshView(services, checks, {"service-resolver/api": resolver}, "dc1", TD, "", True)
    ports = {}
    for subset in ("v1", "v2", "canary", "v2-strict", "broken", ""):
        entry = {**resolver, "DefaultSubset": subset}  # the chain's one target is that subset
        (target,) = compile_chain("api", lambda k, n, e=entry: e if k == "service-resolver" else None, "dc1",
                                  TD).targets.values()
        ports[subset] = [p for _, p in target_endpoints(view, target)]
    assert ports == {"v1": [1], "v2": [2, 3], "canary": [2], "v2-strict": [2], "broken": [], "": [1, 2, 3]}


def test_an_upstreams_own_config_overrides_protocol_and_connect_timeout_as_in_consul() -> None:
    """Consul compiles each upstream's chain with its Config `protocol` and `connect_timeout_ms`."""
    sidecar = {**_sidecar("a", 1, [], {}), "Proxy": {"DestinationServiceName": "api"}}
    web = {"ID": "web-proxy", "Service": "web-sidecar-proxy", "Kind": "connect-proxy", "Port": 2, "Proxy": {
        "DestinationServiceName": "web", "Upstreams": [
            {"DestinationName": "api", "LocalBindPort": 7000, "Config": {"protocol": "tcp", "connect_timeout_ms": 250}},
            {"DestinationName": "api", "LocalBindPort": 7001}]}}
    entries = {f"{e['Kind']}/{e['Name']}": e for e in (*HTTP, SUBSETS, SPLIT)}
    view = MeshView((sidecar, web), (), entries, "dc1", TD, "", True)
    snap = build_all(view, lambda s: ("c", "k"))["web-proxy"]
    l4, l7 = (snap.chain_of(up) for up in snap.upstreams)
    assert (l4.protocol, l4.start_node, l4.targets["api.default.default.dc1"].connect_timeout_ns) == (
        "tcp", "resolver:api.default.default.dc1", 250_000_000)
    assert (l7.protocol, l7.start_node) == ("http", "splitter:api.default.default")


def test_an_upstream_in_another_datacenter_never_gets_the_local_instances() -> None:
    """Consul resolves a `Datacenter: dc2` upstream in dc2; the dev agent knows no dc2, so the
    upstream has no endpoints (fails closed) rather than the local `api` sidecars."""
    sidecar = {**_sidecar("a", 1, [], {}), "Proxy": {"DestinationServiceName": "api"}}
    web = {"ID": "web-proxy", "Service": "web-sidecar-proxy", "Kind": "connect-proxy", "Port": 2, "Proxy": {
        "DestinationServiceName": "web", "Upstreams": [
            {"DestinationName": "api", "LocalBindPort": 7000, "Datacenter": "dc2"},
            {"DestinationName": "api", "LocalBindPort": 7001}]}}
    view = MeshView((sidecar, web), (), {}, "dc1", TD, "", True)
    snap = build_all(view, lambda s: ("c", "k"))["web-proxy"]
    remote, local = snap.upstreams
    assert remote.target_endpoints == (("api.default.default.dc2", ()),)
    assert local.target_endpoints == (("api.default.default.dc1", (("10.0.0.9", 1),)),)
