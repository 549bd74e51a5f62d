"""The ADS server over real gRPC (TCP and unix socket): subscriptions, ACK/NACK, nonces, SDS names,
push order. The client here speaks the protocol the way Envoy does, one stream per node."""
from __future__ import annotations

import queue
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from envoy.config.listener.v3 import listener_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as net_rbac_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import symbol_database
from google.rpc import status_pb2

from nomadmesh.agent.connect.cache import SnapshotCache, resource_name
from nomadmesh.agent.connect.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET
from nomadmesh.agent.connect.snapshot import ProxySnapshot
from nomadmesh.agent.connect.xds import XdsServer
from nomadmesh.mesh.intentions import Intention
from support.connect_support import chain_upstream, snapshot, upstream

NODE = "order-sidecar-proxy"


class AdsClient:
    def __init__(self, target: str, node: str = NODE) -> None:
        self.node = node
        self.channel = grpc.insecure_channel(target)
        self.requests: queue.Queue = queue.Queue()
        self.responses: queue.Queue = queue.Queue()
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self.channel)
        self.call = stub.StreamAggregatedResources(iter(self.requests.get, None))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for resp in self.call:
                self.responses.put(resp)
        except grpc.RpcError:
            pass

    def send(self, type_url: str, names=(), version: str = "", nonce: str = "", error: str | None = None) -> None:
        req = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=list(names),
                                             version_info=version, response_nonce=nonce)
        req.node.id = self.node
        if error:
            req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        self.requests.put(req)

    def recv(self, timeout: float = 5) -> discovery_pb2.DiscoveryResponse:
        return self.responses.get(timeout=timeout)

    def nothing(self, wait: float = 0.3) -> bool:
        try:
            resp = self.responses.get(timeout=wait)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected response for {resp.type_url}")

    def ack(self, resp: discovery_pb2.DiscoveryResponse, names=()) -> None:
        self.send(resp.type_url, names, resp.version_info, resp.nonce)

    def close(self) -> None:
        self.requests.put(None)
        self.call.cancel()
        self.channel.close()


@pytest.fixture
def server() -> Iterator[XdsServer]:
    sock_dir = Path(tempfile.mkdtemp(prefix="nmx"))  # short: unix socket paths are limited to 108 bytes
    srv = XdsServer(SnapshotCache(), "127.0.0.1:0", sock_dir / "xds.sock").start()
    try:
        yield srv
    finally:
        srv.stop()
        sock_dir.rmdir()


@pytest.fixture
def client(server: XdsServer) -> Iterator[AdsClient]:
    c = AdsClient(server.address)
    try:
        yield c
    finally:
        c.close()


def _snap(**changes):
    return snapshot("order", upstreams=(upstream("invoice", 6001, (("10.0.0.2", 21001),)),), **changes)


def _names(resp) -> list[str]:
    out = []
    for any_msg in resp.resources:
        cls = symbol_database.Default().GetSymbol(any_msg.type_url.split("/")[-1])
        msg = cls()
        any_msg.Unpack(msg)
        out.append(resource_name(msg))
    return sorted(out)


def test_wildcard_types_get_everything_and_an_ack_gets_no_resend(server: XdsServer, client: AdsClient) -> None:
    server.cache.set(NODE, _snap())
    client.send(CLUSTER)
    resp = client.recv()
    assert resp.type_url == CLUSTER
    assert _names(resp) == ["invoice.default.dc1.internal.11111111-2222-3333-4444-555555555555.consul", "local_app"]
    client.ack(resp)
    assert client.nothing()
    assert server.streams[NODE].acked_versions[CLUSTER] == resp.version_info


def test_a_subscription_before_the_snapshot_is_answered_when_it_arrives(server: XdsServer, client: AdsClient) -> None:
    client.send(LISTENER)
    assert client.nothing()
    server.cache.set(NODE, _snap())
    assert client.recv().type_url == LISTENER


def test_sds_answers_exactly_the_requested_names(server: XdsServer, client: AdsClient) -> None:
    server.cache.set(NODE, _snap())
    client.send(SECRET, ["ROOTCA"])
    first = client.recv()
    assert _names(first) == ["ROOTCA"]
    client.send(SECRET, ["ROOTCA", "order"], first.version_info, first.nonce)
    second = client.recv()
    assert _names(second) == ["ROOTCA", "order"]


def _public_rbac(resp) -> net_rbac_pb2.RBAC | None:
    """The network RBAC of the public listener in an LDS response (None if there is none)."""
    for any_msg in resp.resources:
        listener = listener_pb2.Listener()
        any_msg.Unpack(listener)
        if listener.name.startswith("public_listener:"):
            rbac = net_rbac_pb2.RBAC()
            listener.filter_chains[0].filters[0].typed_config.Unpack(rbac)
            return rbac
    return None


def _denies_everyone(rbac: net_rbac_pb2.RBAC | None) -> bool:
    return rbac is not None and rbac.rules.action == rbac_pb2.RBAC.ALLOW and not rbac.rules.policies


def test_a_nacked_listener_is_replaced_by_a_fail_closed_one_until_a_new_snapshot(
        server: XdsServer, client: AdsClient) -> None:
    # default allow and web denied: the proxy's real RBAC is a DENY list naming web
    server.cache.set(NODE, _snap(intentions=(Intention("web", "order", "deny"),)))
    client.send(LISTENER)
    resp = client.recv()
    assert not _denies_everyone(_public_rbac(resp))
    client.send(LISTENER, (), "", resp.nonce, error="bad listener: boom")
    closed = client.recv()  # without waiting for any state change
    assert server.streams[NODE].nacks == [(LISTENER, "bad listener: boom")]
    assert closed.type_url == LISTENER and _denies_everyone(_public_rbac(closed))
    assert _names(closed) == _names(resp)  # level 1: the upstream listener stays
    client.ack(closed)
    assert client.nothing()
    status = server.cache.status(NODE)
    assert status["FailClosed"] is True and status["LastNack"]["Detail"] == "bad listener: boom"
    assert status["LastNack"]["Names"] == _names(resp) and status["LastNack"]["ResolvedAt"] is None
    # the same snapshot again changes nothing; a new one is tried, and its ACK ends the refusal
    server.cache.set(NODE, _snap(intentions=(Intention("web", "order", "deny"),)))
    assert client.nothing()
    server.cache.set(NODE, _snap(intentions=(Intention("api", "order", "deny"),)))
    newer = client.recv()
    assert newer.version_info not in (resp.version_info, closed.version_info)
    assert not _denies_everyone(_public_rbac(newer))
    client.ack(newer)
    assert client.nothing()
    status = server.cache.status(NODE)
    assert status["FailClosed"] is False and status["LastNack"]["ResolvedAt"] is not None
    # going back to the refused listeners serves the fail-closed ones at once, without offering them
    server.cache.set(NODE, _snap(intentions=(Intention("web", "order", "deny"),)))
    again = client.recv()
    assert again.version_info == closed.version_info and _denies_everyone(_public_rbac(again))


def test_a_refused_fail_closed_listener_falls_back_to_the_public_listener_alone(
        server: XdsServer, client: AdsClient) -> None:
    server.cache.set(NODE, _snap())
    client.send(LISTENER)
    first = client.recv()
    client.send(LISTENER, (), "", first.nonce, error="boom")
    closed = client.recv()
    client.send(LISTENER, (), "", closed.nonce, error="boom again")
    alone = client.recv()
    assert [n.split(":")[0] for n in _names(alone)] == ["public_listener"] and _denies_everyone(_public_rbac(alone))
    client.send(LISTENER, (), "", alone.nonce, error="still")
    assert client.nothing()  # nothing left to fall back to: reported, not looped
    assert server.cache.status(NODE)["FailClosedLevel"] == 2


def test_a_stale_nonce_is_ignored(server: XdsServer, client: AdsClient) -> None:
    server.cache.set(NODE, _snap())
    client.send(SECRET, ["ROOTCA"])
    first = client.recv()
    client.send(SECRET, ["ROOTCA", "order"], first.version_info, first.nonce)
    second = client.recv()
    client.send(SECRET, ["order"], first.version_info, first.nonce)  # answers the older response
    assert client.nothing()
    client.ack(second, ["ROOTCA", "order"])
    assert client.nothing()


def test_changes_are_pushed_clusters_endpoints_secrets_listeners(server: XdsServer, client: AdsClient) -> None:
    server.cache.set(NODE, _snap())
    subs = {CLUSTER: (), ENDPOINT: ["invoice.default.dc1.internal.11111111-2222-3333-4444-555555555555.consul"],
            SECRET: ["order", "ROOTCA"], LISTENER: ()}
    for type_url, names in subs.items():
        client.send(type_url, names)
        client.ack(client.recv(), names)
    assert client.nothing(0.2)
    # a new upstream, a new leaf and an intention: every type changes at once
    changed = snapshot("order", intentions=(Intention("web", "order", "deny"),), upstreams=(
        upstream("invoice", 6001, (("10.0.0.2", 21001),)), upstream("tax", 6002, (("10.0.0.4", 21003),))))
    server.cache.set(NODE, changed)
    cds, eds, sds = client.recv(), client.recv(), client.recv()
    assert [cds.type_url, eds.type_url, sds.type_url] == [CLUSTER, ENDPOINT, SECRET]
    # Make before break: the listeners wait until Envoy has the new cluster's endpoints.
    client.ack(cds)
    assert client.nothing(0.2)
    names = [*subs[ENDPOINT], "tax.default.dc1.internal.11111111-2222-3333-4444-555555555555.consul"]
    client.ack(eds, names)  # Envoy asks for the new cluster's endpoints
    eds2 = client.recv()
    assert eds2.type_url == ENDPOINT and _names(eds2) == sorted(names)
    assert client.nothing(0.2)
    client.ack(eds2, names)
    assert client.recv().type_url == LISTENER


SUBSET_CLUSTERS = [f"{s}.api.default.dc1.internal.11111111-2222-3333-4444-555555555555.consul" for s in ("v1", "v2")]


def _split_snap(v1: int) -> ProxySnapshot:
    entries = ({"Kind": "service-defaults", "Name": "api", "Protocol": "http"},
               {"Kind": "service-resolver", "Name": "api", "Subsets": {"v1": {}, "v2": {}}},
               {"Kind": "service-splitter", "Name": "api", "Splits": [
                   {"Weight": v1, "ServiceSubset": "v1"}, {"Weight": 100 - v1, "ServiceSubset": "v2"}]})
    return snapshot("order", upstreams=(chain_upstream("api", 7000, entries, {}),))


def test_rds_serves_the_named_route_configuration_and_a_split_change_sends_only_routes(
        server: XdsServer, client: AdsClient) -> None:
    server.cache.set(NODE, _split_snap(100))
    client.send(CLUSTER)
    client.ack(client.recv())
    client.send(ENDPOINT, SUBSET_CLUSTERS)
    client.ack(client.recv(), SUBSET_CLUSTERS)
    client.send(LISTENER)
    client.ack(client.recv())
    client.send(ROUTE, ["api"])  # what Envoy asks once a listener names route configuration "api"
    first = client.recv()
    assert first.type_url == ROUTE and _names(first) == ["api"]
    client.ack(first, ["api"])
    assert client.nothing(0.2)
    assert server.streams[NODE].acked_versions[ROUTE] == first.version_info
    server.cache.set(NODE, _split_snap(50))  # same clusters and listeners, other weights
    second = client.recv()
    assert second.type_url == ROUTE and second.version_info != first.version_info
    client.ack(second, ["api"])
    assert client.nothing(0.2)


def _serving_the_split(server: XdsServer, client: AdsClient) -> None:
    """Envoy has the 100% v1 split's clusters, their endpoints and the route, all ACKed."""
    server.cache.set(NODE, _split_snap(100))
    client.send(CLUSTER)
    client.ack(client.recv())
    client.send(ENDPOINT, SUBSET_CLUSTERS)
    client.ack(client.recv(), SUBSET_CLUSTERS)
    client.send(ROUTE, ["api"])
    client.ack(client.recv(), ["api"])


def test_a_route_to_a_new_cluster_waits_for_its_endpoints(server: XdsServer, client: AdsClient) -> None:
    """A router sending /admin to a new service: RDS is sent only after Envoy ACKed the new
    cluster's endpoints, so no request meets a warming cluster (503)."""
    _serving_the_split(server, client)
    entries = ({"Kind": "service-defaults", "Name": "api", "Protocol": "http"},
               {"Kind": "service-defaults", "Name": "admin", "Protocol": "http"},
               {"Kind": "service-resolver", "Name": "api", "Subsets": {"v1": {}, "v2": {}}},
               {"Kind": "service-router", "Name": "api", "Routes": [
                   {"Match": {"HTTP": {"PathPrefix": "/admin"}}, "Destination": {"Service": "admin"}}]})
    server.cache.set(NODE, snapshot("order", upstreams=(chain_upstream("api", 7000, entries, {}),)))
    cds, eds = client.recv(), client.recv()
    assert [cds.type_url, eds.type_url] == [CLUSTER, ENDPOINT]
    client.ack(cds)
    names = [*SUBSET_CLUSTERS, "admin.default.dc1.internal.11111111-2222-3333-4444-555555555555.consul",
             "api.default.dc1.internal.11111111-2222-3333-4444-555555555555.consul"]
    client.ack(eds, names)
    eds2 = client.recv()
    assert eds2.type_url == ENDPOINT and client.nothing(0.2)  # the route still waits
    client.ack(eds2, names)
    assert client.recv().type_url == ROUTE


def test_a_cluster_the_old_routes_name_stays_until_the_new_routes_are_acked(
        server: XdsServer, client: AdsClient) -> None:
    """A release ending: the splitter and the resolver's subsets go, the route goes back to the
    default cluster. The subset clusters stay in CDS (with their endpoints) until Envoy has ACKed the
    route that no longer names them, so no request meets a route to a removed cluster (503)."""
    _serving_the_split(server, client)
    plain = ({"Kind": "service-defaults", "Name": "api", "Protocol": "http"},)
    server.cache.set(NODE, snapshot("order", upstreams=(chain_upstream("api", 7000, plain, {}),)))
    default = "api.default.dc1.internal.11111111-2222-3333-4444-555555555555.consul"
    cds, eds = client.recv(), client.recv()
    assert (cds.type_url, eds.type_url) == (CLUSTER, ENDPOINT)
    assert {default, *SUBSET_CLUSTERS} <= set(_names(cds))  # make the new one, keep the old ones
    client.ack(cds)
    names = [default, *SUBSET_CLUSTERS]
    client.ack(eds, names)
    eds2 = client.recv()
    assert eds2.type_url == ENDPOINT and _names(eds2) == sorted(names)
    client.ack(eds2, names)
    route = client.recv()
    assert route.type_url == ROUTE and client.nothing(0.2)  # the subset clusters wait for its ACK
    client.ack(route, ["api"])
    last = client.recv()
    assert last.type_url == CLUSTER and default in _names(last)
    assert not set(SUBSET_CLUSTERS) & set(_names(last))  # now they may go
    client.ack(last)
    eds3 = client.recv()
    assert eds3.type_url == ENDPOINT and _names(eds3) == [default]
    client.ack(eds3, [default])
    assert client.nothing(0.2)


def test_unix_socket_serves_the_same_stream(server: XdsServer) -> None:
    server.cache.set(NODE, _snap())
    c = AdsClient(f"unix:{server.unix_path}")
    try:
        c.send(LISTENER)
        assert c.recv().type_url == LISTENER
    finally:
        c.close()


def test_latest_wins_a_burst_ends_on_the_last_snapshot(server: XdsServer, client: AdsClient) -> None:
    server.cache.set(NODE, _snap())
    client.send(LISTENER)
    client.ack(client.recv())
    last = None
    for i in range(30):
        snap = _snap(default_allow=bool(i % 2), intentions=(Intention(f"s{i}", "order", "deny"),))
        last = server.cache.set(NODE, snap)
    got = []
    while True:
        try:
            resp = client.responses.get(timeout=0.5)
        except queue.Empty:
            break
        got.append(resp)
        client.ack(resp)
    assert got and got[-1].version_info == last.version_of(last.select(LISTENER, None))
    assert len(got) <= 30


def test_sixty_streams_at_once_are_all_served(server: XdsServer) -> None:
    # grpc.aio: streams are coroutines, not pool threads, so many sidecars do not starve each other.
    clients = [AdsClient(server.address, node=f"n{i}") for i in range(60)]
    try:
        for i, c in enumerate(clients):
            server.cache.set(c.node, snapshot(f"svc{i}"))
            c.send(LISTENER)
        assert all(c.recv(10).type_url == LISTENER for c in clients)
        assert len(server.streams) == 60
    finally:
        for c in clients:
            c.close()
