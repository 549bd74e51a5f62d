"""A state-of-the-world ADS server (grpc.aio) serving LDS, RDS, CDS, EDS and SDS from a SnapshotCache.

One asyncio task per Envoy stream, all on one event loop in a background thread, so 50+ sidecars
cost 50 coroutines rather than 50 pool threads. The server only tracks, per stream and type, what
was requested, what was sent (version + nonce) and what was ACKed; the resources come from the
cache, already built and versioned.

Protocol, per type:
* a request whose `response_nonce` is not the last nonce we sent is stale and ignored;
* a request with `error_detail` is a NACK: logged with Envoy's message, reported to the cache
  (which serves refused listeners' node fail-closed ones instead), and the rejected version is
  not sent again (the next snapshot change produces a new one);
* otherwise it is a (re)subscription or an ACK; `resource_names` is remembered (EDS, SDS and RDS
  are not wildcard: exactly the requested names are answered), and if what we have for those names
  differs from what we last sent, it is sent.
On every cache change the stream sends the types that changed in the order CDS → EDS → SDS → LDS → RDS.
After clusters change, endpoints are resent even if unchanged, because a re-created EDS cluster
waits (warms) for an endpoints response. Listeners and routes are then held back until Envoy has
asked for and ACKed the endpoints of every cluster (make before break): a route naming a cluster
that is still warming answers 503, so a new subset's cluster must be ready before any route
sends to it. The other half (break after make): a cluster gone from the cache stays in the CDS
responses (with its last endpoints) until Envoy has ACKed listeners and routes that no longer
name it; only the next CDS drops it. A state-of-the-world CDS without it would remove it at once,
and the routes Envoy still has would answer 503 (no cluster) until the new ones arrive.

`XdsServer(cache, tcp_address="127.0.0.1:0", unix_path=...)` listens on a TCP address and also on a
unix socket: Envoys inside network namespaces reach the agent through a socket file in the
shared filesystem, as Nomad does with alloc/tmp/consul_grpc.sock.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2

from nomadmesh.agent.connect.cache import Resources, SnapshotCache
from nomadmesh.agent.connect.resources import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, ROUTE, SECRET
from nomadmesh.errors import AgentError

log = logging.getLogger(__name__)

NON_WILDCARD = (ENDPOINT, SECRET, ROUTE)
HELD_FOR_ENDPOINTS = (LISTENER, ROUTE)  # sent only once new clusters have their endpoints
_nonces = itertools.count(1)
_CHANGED = object()  # the stream's inbox mark for "the cache changed"


@dataclass
class _TypeState:
    subscribed: bool = False
    names: frozenset[str] = frozenset()
    sent_version: str | None = None
    sent_nonce: str = ""
    acked_version: str | None = None
    nacked_version: str | None = None
    force: bool = False  # resend even if the content did not change


@dataclass
class StreamStats:
    """What a stream did; the server keeps these per node for tests and the agent's UI."""

    node_id: str = ""
    sent: dict[str, int] = field(default_factory=dict)
    acks: dict[str, int] = field(default_factory=dict)
    nacks: list[tuple[str, str]] = field(default_factory=list)  # (type_url, Envoy's message)
    acked_versions: dict[str, str] = field(default_factory=dict)


class _Stream:
    def __init__(self, cache: SnapshotCache, stats: StreamStats) -> None:
        self.cache = cache
        self.stats = stats
        self.types: dict[str, _TypeState] = {t: _TypeState() for t in PUSH_ORDER}
        self.awaiting_endpoints = False  # clusters were sent; listeners and routes wait for their EDS ACK
        # What the last CDS / EDS response held, by name: a removed cluster is served from here
        # until the routes and listeners that named it are replaced (ACKed).
        self.last_sent: dict[str, dict[str, any_pb2.Any]] = {CLUSTER: {}, ENDPOINT: {}}

    def on_request(self, req: discovery_pb2.DiscoveryRequest) -> list[discovery_pb2.DiscoveryResponse]:
        st = self.types.get(req.type_url)
        if st is None:
            log.warning("node %s asked for unsupported type %s", self.stats.node_id, req.type_url)
            return []
        if req.response_nonce and req.response_nonce != st.sent_nonce:
            return []  # stale: answers an older response than the last one we sent
        if req.response_nonce:
            if req.HasField("error_detail"):
                st.nacked_version = st.sent_version
                self.stats.nacks.append((req.type_url, req.error_detail.message))
                log.error("node %s NACKed %s version %s: %s", self.stats.node_id,
                          req.type_url, st.sent_version, req.error_detail.message)
                # Envoy keeps its previous config: the cache falls back to fail-closed listeners.
                self.cache.nacked(self.stats.node_id, req.type_url, st.sent_version, req.error_detail.message)
            else:
                st.acked_version = req.version_info
                self.stats.acks[req.type_url] = self.stats.acks.get(req.type_url, 0) + 1
                self.stats.acked_versions[req.type_url] = req.version_info
                self.cache.acked(self.stats.node_id, req.type_url, req.version_info)
        st.subscribed = True
        st.names = frozenset(req.resource_names)
        wanted: tuple[str, ...] = (req.type_url, *(HELD_FOR_ENDPOINTS if self.awaiting_endpoints else ()))
        res = self.cache.get(self.stats.node_id)
        if req.type_url in HELD_FOR_ENDPOINTS and res is not None and self._kept_clusters(res):
            wanted = (*wanted, CLUSTER)  # routes ACKed: the clusters kept for the old ones may go
        return self.pending(wanted)

    def _kept_clusters(self, res: Resources) -> set[str]:
        """Clusters last sent that the cache no longer has."""
        return set(self.last_sent[CLUSTER]) - set(res.by_type.get(CLUSTER, {}))

    def _routes_settled(self, res: Resources) -> bool:
        """Envoy ACKed the listeners and routes the cache holds now: none names a removed cluster."""
        for type_url in HELD_FOR_ENDPOINTS:
            st = self.types[type_url]
            if not st.subscribed or (type_url in NON_WILDCARD and not st.names):
                continue
            current = res.version_of(res.select(type_url, st.names if type_url in NON_WILDCARD else None))
            if st.acked_version != current:
                return False
        return True

    def _endpoints_settled(self, res: Resources) -> bool:
        """Envoy asked for the endpoints of every EDS cluster we serve and answered our last EDS response."""
        wanted = set(res.by_type.get(ENDPOINT, {}))
        eds = self.types[ENDPOINT]
        return not wanted or (wanted <= eds.names and eds.sent_version is not None
                              and eds.sent_version in (eds.acked_version, eds.nacked_version))

    def pending(self, type_urls: tuple[str, ...] = PUSH_ORDER) -> list[discovery_pb2.DiscoveryResponse]:
        """Responses for every subscribed type whose content differs from what was last sent."""
        res = self.cache.get(self.stats.node_id)
        if res is None:
            return []
        out = []
        for type_url in PUSH_ORDER:
            if type_url not in type_urls:
                continue
            if type_url in HELD_FOR_ENDPOINTS and self.awaiting_endpoints:
                if not self._endpoints_settled(res):
                    continue  # sent when Envoy ACKs the endpoints (on_request)
                self.awaiting_endpoints = False
            resp = self._response(res, type_url)
            if resp is not None:
                out.append(resp)
                if type_url == CLUSTER:
                    self.types[ENDPOINT].force = True
                    type_urls = (*type_urls, ENDPOINT)
                    self.awaiting_endpoints = True
        return out

    def _response(self, res: Resources, type_url: str) -> discovery_pb2.DiscoveryResponse | None:
        st = self.types[type_url]
        if not st.subscribed:
            return None
        names = st.names if type_url in NON_WILDCARD else None
        if type_url in NON_WILDCARD and not names:
            return None  # nothing asked for yet
        named: dict[str, any_pb2.Any] | None = None
        if type_url in self.last_sent:
            named = self._with_kept_clusters(res, type_url, names)
            chosen = list(named.values())
        else:
            chosen = res.select(type_url, names)
        if names is None and len(chosen) == len(res.by_type.get(type_url, {})):
            version = res.versions[type_url]  # all of the type, as the cache versioned it
        else:
            version = res.version_of(chosen)
        if not st.force and (version == st.sent_version or version == st.nacked_version):
            return None
        st.force = False
        st.sent_version = version
        if named is not None:
            self.last_sent[type_url] = named
        st.sent_nonce = str(next(_nonces))
        self.stats.sent[type_url] = self.stats.sent.get(type_url, 0) + 1
        return discovery_pb2.DiscoveryResponse(
            version_info=version, resources=chosen, type_url=type_url, nonce=st.sent_nonce)


    def _with_kept_clusters(self, res: Resources, type_url: str,
                            names: frozenset[str] | None) -> dict[str, any_pb2.Any]:
        """The cache's clusters (or endpoints) by name, plus those that left the cache while
        Envoy's routes may still name them."""
        table = res.by_type.get(type_url, {})
        out = {n: a for n, a in table.items() if not names or n in names}
        kept = self._kept_clusters(res)
        if not kept or self._routes_settled(res):
            return out
        for n in sorted(kept):
            if n in self.last_sent[type_url] and (not names or n in names):
                out[n] = self.last_sent[type_url][n]
        return out


class _AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, server: XdsServer) -> None:
        self.server = server

    async def StreamAggregatedResources(
        self, request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        # One inbox for Envoy's requests and for "the cache changed" (at most one such mark
        # queued: many sets while busy = one wake-up, latest wins); None: Envoy closed the stream.
        inbox: asyncio.Queue[discovery_pb2.DiscoveryRequest | object | None] = asyncio.Queue()
        change_queued = False
        stats = StreamStats()
        stream = _Stream(self.server.cache, stats)
        cancel_watch = None

        def on_change() -> None:  # on the loop, from the server's waker
            nonlocal change_queued
            if not change_queued:
                change_queued = True
                inbox.put_nowait(_CHANGED)

        async def read() -> None:
            try:
                async for req in request_iterator:
                    inbox.put_nowait(req)
            finally:
                inbox.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (item := await inbox.get()) is not None:
                if item is _CHANGED:
                    change_queued = False
                    responses = stream.pending()
                else:
                    assert isinstance(item, discovery_pb2.DiscoveryRequest)
                    if not stats.node_id:
                        stats.node_id = item.node.id
                        self.server.streams[stats.node_id] = stats
                        cancel_watch = self.server.cache.watch(
                            stats.node_id, partial(self.server.waker.wake, on_change))
                    responses = stream.on_request(item)
                for resp in responses:
                    yield resp
        finally:
            if cancel_watch is not None:
                cancel_watch()
            if self.server.streams.get(stats.node_id) is stats:
                del self.server.streams[stats.node_id]
            reader.cancel()


class _LoopWaker:
    """Runs callbacks on the server's loop from other threads, one loop wake-up per burst: a
    snapshot pass that changes 1,000 proxies would otherwise write the loop's self-pipe 1,000
    times and make it switch threads as often."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._due: dict[Callable[[], None], None] = {}  # insertion-ordered set

    def wake(self, callback: Callable[[], None]) -> None:
        loop = self.loop
        if loop is None:
            return
        with self._lock:
            first = not self._due
            self._due[callback] = None
        if first:
            try:
                loop.call_soon_threadsafe(self._run)
            except RuntimeError:
                pass  # the loop closed: the server is stopping

    def _run(self) -> None:
        with self._lock:
            due, self._due = self._due, {}
        for callback in due:
            callback()


class XdsServer:
    """The ADS gRPC server. `start()` returns once it listens; `stop()` closes every stream."""

    def __init__(self, cache: SnapshotCache, tcp_address: str | None = "127.0.0.1:0",
                 unix_path: Path | str | None = None) -> None:
        if tcp_address is None and unix_path is None:
            raise AgentError("xDS server: give a TCP address, a unix socket path, or both")
        self.cache = cache
        self.tcp_address = tcp_address
        self.unix_path = Path(unix_path) if unix_path else None
        self.port: int | None = None
        self.streams: dict[str, StreamStats] = {}  # node id → its open stream's stats
        self.waker = _LoopWaker()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: grpc.aio.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """host:port of the TCP listener."""
        host = (self.tcp_address or "").rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    def start(self) -> XdsServer:
        ready = threading.Event()
        error: list[BaseException] = []

        def run() -> None:
            loop = self._loop = self.waker.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start())
            except BaseException as exc:  # reported to start()'s caller below
                error.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            # Streams still open when the loop stopped: cancel them so none is left half-done.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name="xds-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        if error:
            raise AgentError(f"xDS server could not listen: {error[0]}")
        return self

    async def _start(self) -> None:
        self._server = grpc.aio.server(options=[
            # Sidecars hold their stream for their whole life; keep idle ones alive, drop dead ones.
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.keepalive_permit_without_calls", 1),
        ])
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(_AdsServicer(self), self._server)
        if self.tcp_address is not None:
            self.port = self._server.add_insecure_port(self.tcp_address)
            if not self.port:
                raise AgentError(f"xDS server: cannot bind {self.tcp_address}")
        if self.unix_path is not None:
            self.unix_path.parent.mkdir(parents=True, exist_ok=True)
            self.unix_path.unlink(missing_ok=True)
            if not self._server.add_insecure_port(f"unix:{self.unix_path}"):
                raise AgentError(f"xDS server: cannot bind unix socket {self.unix_path}")
        await self._server.start()
        if self.unix_path is not None:
            os.chmod(self.unix_path, 0o600)  # a client can ask for any node's key: the agent's user only

    def stop(self, grace: float = 0.5) -> None:
        if self._loop is None or self._server is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._server.stop(grace), self._loop)
        fut.result(timeout=grace + 10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.unix_path is not None:
            self.unix_path.unlink(missing_ok=True)
        self._loop = self._server = self._thread = self.waker.loop = None

    def __enter__(self) -> XdsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
