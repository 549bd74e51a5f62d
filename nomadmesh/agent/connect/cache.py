"""The snapshot cache: per node, the latest consistent set of Envoy resources, versioned by content.

`SnapshotCache.set(node_id, snap)` builds the resources of a ProxySnapshot, refuses an inconsistent
set (a listener naming a cluster that does not exist, an EDS cluster without endpoints, a TLS
context naming a secret nobody serves, a name used twice), stores it, and wakes the node's
watchers. A watcher is a callback that only says "something changed"; the stream then reads
`get(node_id)`, so a slow stream that misses several sets only ever sends the newest (latest wins,
like Consul's proxycfg manager and go-control-plane's SetSnapshot).

When Envoy NACKs a node's listeners (`nacked`, called by the ADS stream), the cache serves that
node fail-closed listeners instead (failclosed.py: the public listener admits nobody) until a
different snapshot is set; listener versions Envoy refused once are never offered again but
replaced by the fail-closed ones at once. `status(node_id)` says whether a node is fail-closed
and what Envoy last refused.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import TypeVar

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from nomadmesh.agent.connect.failclosed import MAX_LEVEL, Nack, fail_closed_snapshot
from nomadmesh.agent.connect.ingress_snapshot import IngressSnapshot
from nomadmesh.agent.connect.resources import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, ROUTE, SECRET, build_resources
from nomadmesh.agent.connect.resources.common import pack
from nomadmesh.agent.connect.resources.listeners import listeners_from_snapshot
from nomadmesh.agent.connect.snapshot import ProxySnapshot
from nomadmesh.errors import AgentError

log = logging.getLogger(__name__)


class InconsistentSnapshot(AgentError):
    """The resources built for a proxy reference each other wrongly; nothing was stored."""


def resource_name(msg: Message) -> str:
    """The name Envoy knows a resource by (a ClusterLoadAssignment names its cluster)."""
    # The generic Message declares neither field; every resource type has one of the two.
    return msg.cluster_name if msg.DESCRIPTOR.name == "ClusterLoadAssignment" else msg.name  # type: ignore[attr-defined]


def _hash(blobs: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for b in blobs:
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Resources:
    """One node's resources: per type, name → packed Any (sorted by name) and a content version."""

    snapshot: ProxySnapshot | IngressSnapshot
    by_type: Mapping[str, Mapping[str, any_pb2.Any]]
    versions: Mapping[str, str]
    fail_closed: int = 0  # 0: built from `snapshot`; 1-2: failclosed level served in its place
    # The messages `by_type` was packed from, so a later build can keep the types it does not change.
    built: Mapping[str, list[Message]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_messages(cls, snap: ProxySnapshot | IngressSnapshot, built: Mapping[str, list[Message]],
                      kept: Resources | None = None) -> Resources:
        """Pack and version `built`; the types `built` shares (the same lists) with `kept` are
        taken from it as they are, not packed again."""
        by_type: dict[str, Mapping[str, any_pb2.Any]] = {}
        versions: dict[str, str] = {}
        for type_url in PUSH_ORDER:
            if kept is not None and type_url in kept.built and built.get(type_url) is kept.built[type_url]:
                by_type[type_url], versions[type_url] = kept.by_type[type_url], kept.versions[type_url]
                continue
            named = {resource_name(m): pack(m) for m in sorted(built.get(type_url, []), key=resource_name)}
            by_type[type_url] = MappingProxyType(named)
            versions[type_url] = _hash(a.value for a in named.values())
        return cls(snap, MappingProxyType(by_type), MappingProxyType(versions), built=MappingProxyType(dict(built)))

    def select(self, type_url: str, names: Iterable[str] | None) -> list[any_pb2.Any]:
        """The resources of a type, all of them (wildcard: names None or empty) or those named."""
        table = self.by_type.get(type_url, {})
        wanted = set(names or ())
        if not wanted:
            return list(table.values())
        return [a for n, a in table.items() if n in wanted]

    def version_of(self, resources: list[any_pb2.Any]) -> str:
        return _hash(a.value for a in resources)


# --- consistency ------------------------------------------------------------------------------


_M = TypeVar("_M", bound=Message)


def _unpack(any_msg: any_pb2.Any, cls: type[_M]) -> _M | None:
    msg = cls()
    return msg if any_msg.Unpack(msg) else None


def _tls_secret_names(ctx: tls_pb2.CommonTlsContext) -> Iterator[str]:
    for ref in ctx.tls_certificate_sds_secret_configs:
        yield ref.name
    if ctx.HasField("validation_context_sds_secret_config"):
        yield ctx.validation_context_sds_secret_config.name
    if ctx.HasField("combined_validation_context"):
        yield ctx.combined_validation_context.validation_context_sds_secret_config.name


def _route_clusters(virtual_hosts: Iterable[rc_pb2.VirtualHost]) -> set[str]:
    """Clusters the routes send to, directly or as weighted legs."""
    out: set[str] = set()
    for vh in virtual_hosts:
        for r in vh.routes:
            if r.route.cluster:
                out.add(r.route.cluster)
            out.update(w.name for w in r.route.weighted_clusters.clusters)
    return out


def _listener_refs(listener: listener_pb2.Listener) -> tuple[set[str], set[str], set[str]]:
    """(clusters, secrets, RDS route configurations) a listener names, for the filter shapes our builders produce."""
    clusters: set[str] = set()
    secrets: set[str] = set()
    routes: set[str] = set()
    for chain in listener.filter_chains:
        if chain.HasField("transport_socket"):
            tls = _unpack(chain.transport_socket.typed_config, tls_pb2.DownstreamTlsContext)
            if tls is not None:
                secrets.update(_tls_secret_names(tls.common_tls_context))
        for f in chain.filters:
            tcp = _unpack(f.typed_config, tcp_proxy_pb2.TcpProxy)
            if tcp is not None and tcp.cluster:
                clusters.add(tcp.cluster)
            hcm = _unpack(f.typed_config, hcm_pb2.HttpConnectionManager)
            if hcm is not None:
                clusters.update(_route_clusters(hcm.route_config.virtual_hosts))
                if hcm.HasField("rds"):
                    routes.add(hcm.rds.route_config_name)
    return clusters, secrets, routes


def check_consistent(built: Mapping[str, list[Message]]) -> list[str]:
    """Every problem with a built set of resources (empty when consistent)."""
    problems: list[str] = []
    names: dict[str, set[str]] = {}
    for type_url in PUSH_ORDER:
        seen: set[str] = set()
        for m in built.get(type_url, []):
            n = resource_name(m)
            if n in seen:
                problems.append(f"{type_url.rsplit('.', 1)[-1]} {n!r} is defined twice")
            seen.add(n)
        names[type_url] = seen
    for listener in built.get(LISTENER, []):
        assert isinstance(listener, listener_pb2.Listener)
        clusters, secrets, routes = _listener_refs(listener)
        for c in sorted(clusters - names[CLUSTER]):
            problems.append(f"listener {listener.name!r} routes to missing cluster {c!r}")
        for r in sorted(routes - names[ROUTE]):
            problems.append(f"listener {listener.name!r} asks for missing route configuration {r!r}")
        for s in sorted(secrets - names[SECRET]):
            problems.append(f"listener {listener.name!r} uses missing secret {s!r}")
    for cluster in built.get(CLUSTER, []):
        assert isinstance(cluster, cluster_pb2.Cluster)
        if cluster.type == cluster_pb2.Cluster.EDS and cluster.name not in names[ENDPOINT]:
            problems.append(f"EDS cluster {cluster.name!r} has no endpoints resource")
        if cluster.HasField("transport_socket"):
            tls = _unpack(cluster.transport_socket.typed_config, tls_pb2.UpstreamTlsContext)
            if tls is not None:
                for s in sorted(set(_tls_secret_names(tls.common_tls_context)) - names[SECRET]):
                    problems.append(f"cluster {cluster.name!r} uses missing secret {s!r}")
    for rc in built.get(ROUTE, []):
        assert isinstance(rc, route_pb2.RouteConfiguration)
        for c in sorted(_route_clusters(rc.virtual_hosts) - names[CLUSTER]):
            problems.append(f"route configuration {rc.name!r} routes to missing cluster {c!r}")
    for cla in sorted(names[ENDPOINT] - names[CLUSTER]):
        problems.append(f"endpoints {cla!r} belong to no cluster")
    return problems


# Snapshot fields only the listeners read (the public listener's RBAC; failclosed.py changes
# nothing else either).
LISTENER_ONLY_FIELDS = frozenset({"intentions", "default_allow"})


def _only_listeners_differ(previous: Resources, snap: ProxySnapshot | IngressSnapshot) -> bool:
    """Whether `previous` was built (not fail-closed) from a sidecar snapshot that differs from
    `snap` in LISTENER_ONLY_FIELDS at most: then every other type is the same as before."""
    old = previous.snapshot
    return (not previous.fail_closed and isinstance(old, ProxySnapshot) and isinstance(snap, ProxySnapshot)
            and bool(previous.built)
            and all(getattr(old, f.name) == getattr(snap, f.name)
                    for f in fields(ProxySnapshot) if f.compare and f.name not in LISTENER_ONLY_FIELDS))


# --- the cache ----------------------------------------------------------------------------------

Watcher = Callable[[], object]  # what it returns is ignored


class SnapshotCache:
    """Thread-safe: the agent sets from its threads, ADS streams read from the gRPC loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resources: dict[str, Resources] = {}
        self._watchers: dict[str, set[Watcher]] = {}
        self._rejected: dict[str, set[str]] = {}  # node -> listener versions Envoy NACKed
        self._nacks: dict[str, Nack] = {}  # node -> Envoy's last refusal

    def set(self, node_id: str, snap: ProxySnapshot | IngressSnapshot) -> Resources:
        current = self.get(node_id)
        if current is not None and current.snapshot == snap:
            return current  # nothing changed (or it is being served fail-closed): do not wake anyone
        resources = self._build(snap, current)
        with self._lock:
            rejected = self._rejected.get(node_id, set())
        level = 0
        # Fail-closed listeners exist for sidecars only: an ingress gateway enforces no intentions.
        while isinstance(snap, ProxySnapshot) and resources.versions[LISTENER] in rejected and level < MAX_LEVEL:
            level += 1  # Envoy refused these listeners before: do not offer them again
            resources = replace(self._build(fail_closed_snapshot(snap, level)), snapshot=snap, fail_closed=level)
        if level:
            log.error("connect: proxy %s: Envoy refused these listeners before; serving fail-closed "
                      "listeners (level %d) instead", node_id, level)
        with self._lock:
            self._resources[node_id] = resources
            watchers = list(self._watchers.get(node_id, ()))
        self._notify(watchers)
        return resources

    @staticmethod
    def _build(snap: ProxySnapshot | IngressSnapshot, previous: Resources | None = None) -> Resources:
        """Build, check and pack `snap`'s resources. When only what the listeners read changed
        since `previous` (an intention write), only the listeners are built again."""
        kept = previous if previous is not None and _only_listeners_differ(previous, snap) else None
        if kept is not None:
            assert isinstance(snap, ProxySnapshot)
            built = {**kept.built, LISTENER: listeners_from_snapshot(snap)}
        else:
            built = build_resources(snap)
        problems = check_consistent(built)
        if problems:
            raise InconsistentSnapshot(f"proxy {snap.proxy_id}: " + "; ".join(problems))
        return Resources.from_messages(snap, built, kept)

    def nacked(self, node_id: str, type_url: str, version: str | None, detail: str) -> None:
        """Envoy refused `version` of `type_url`. Record it; if those are the node's current
        listeners, serve the next fail-closed level in their place."""
        with self._lock:
            current = self._resources.get(node_id)
            is_current = current is not None and version is not None and current.versions.get(type_url) == version
            names = tuple(current.by_type[type_url]) if is_current and current else ()
            self._nacks[node_id] = Nack(type_url, version or "", names, detail, time.time())
            if type_url != LISTENER or not is_current or current is None:
                return
            self._rejected.setdefault(node_id, set()).add(str(version))
        if not isinstance(current.snapshot, ProxySnapshot):
            log.error("connect: gateway %s refused its listeners; it keeps the last ones it accepted "
                      "(fail-closed listeners exist for sidecars only): %s", node_id, detail)
            return
        if current.fail_closed >= MAX_LEVEL:
            log.error("connect: proxy %s refused even its fail-closed listeners; it keeps the last ones it "
                      "accepted: %s", node_id, detail)
            return
        level = current.fail_closed + 1
        try:
            closed = replace(self._build(fail_closed_snapshot(current.snapshot, level)),
                             snapshot=current.snapshot, fail_closed=level)
        except Exception:  # runs in an ADS stream: report, never take the stream down
            log.exception("connect: proxy %s: cannot build fail-closed listeners", node_id)
            return
        with self._lock:
            if self._resources.get(node_id) is not current:
                return  # a newer snapshot arrived meanwhile: it is tried as usual
            self._resources[node_id] = closed
            watchers = list(self._watchers.get(node_id, ()))
        log.error("connect: proxy %s NACKed its listeners; serving fail-closed listeners (level %d: no "
                  "caller admitted) until a valid policy arrives", node_id, level)
        self._notify(watchers)

    def acked(self, node_id: str, type_url: str, version: str) -> None:
        """Envoy accepted `version` of `type_url`: a refusal of that type is over once Envoy runs a
        version built from the real snapshot (not a fail-closed one)."""
        with self._lock:
            nack, current = self._nacks.get(node_id), self._resources.get(node_id)
            if (nack is None or nack.resolved_at is not None or nack.type_url != type_url or current is None
                    or current.fail_closed or current.versions.get(type_url) != version):
                return
            self._nacks[node_id] = replace(nack, resolved_at=time.time())
        log.info("connect: proxy %s accepted %s version %s; the earlier refusal is resolved",
                 node_id, type_url.rsplit(".", 1)[-1], version)

    def status(self, node_id: str) -> dict[str, object]:
        """Whether `node_id` is served fail-closed, and Envoy's last refusal (JSON-ready)."""
        with self._lock:
            current, nack = self._resources.get(node_id), self._nacks.get(node_id)
        return {"FailClosed": bool(current and current.fail_closed),
                "FailClosedLevel": current.fail_closed if current else 0,
                "LastNack": nack.to_json() if nack else None}

    def get(self, node_id: str) -> Resources | None:
        with self._lock:
            return self._resources.get(node_id)

    def delete(self, node_id: str) -> None:
        with self._lock:
            self._resources.pop(node_id, None)
            self._rejected.pop(node_id, None)
            self._nacks.pop(node_id, None)
            watchers = list(self._watchers.get(node_id, ()))
        self._notify(watchers)

    def nodes(self) -> list[str]:
        with self._lock:
            return sorted(self._resources)

    def watch(self, node_id: str, watcher: Watcher) -> Callable[[], None]:
        """Call `watcher()` after every change for `node_id`; returns the function that stops it."""
        with self._lock:
            self._watchers.setdefault(node_id, set()).add(watcher)

        def cancel() -> None:
            with self._lock:
                self._watchers.get(node_id, set()).discard(watcher)
        return cancel

    @staticmethod
    def _notify(watchers: list[Watcher]) -> None:
        for w in watchers:
            try:
                w()
            except Exception:  # a broken stream must not stop the others from hearing about it
                log.exception("snapshot watcher failed")
