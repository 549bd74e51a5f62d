"""A Nomad-run sidecar's live Envoy figures, for the dev agent's /v1/nomadmesh/sidecar/<id>/stats
(and, with `?format=prometheus`, Envoy's own Prometheus text: what `nomadmesh release` reads).

Each sidecar's Envoy admin listens only inside its allocation's network namespace (127.0.0.2:19000+i,
see nomad/connect_hook.py). The agent owns those namespaces, so it enters one for a moment:
`nsenter --net=<netns> python -c <fetch>` in a short-lived child with a 2 s limit, rather than
setns() in a thread of the threaded server (a thread left in the wrong namespace would serve
every later request from there). Answers are cached for ~1 s per sidecar and concurrent callers
share one fetch, so a storm of page refreshes forks at most one child per sidecar per second.

Unavailable carries the HTTP status the view answers: 404 no such service, or not a sidecar proxy;
503 with a one-line reason: the sidecar is not run by this agent's Nomad, its allocation or task
is not running, or its admin did not answer.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from nomadmesh.agent.connect import admin_stats
from nomadmesh.agent.context import AgentContext
from nomadmesh.agent.nomad import connect_hook
from nomadmesh.agent.nomad.platform import Platform


class Unavailable(Exception):
    """No figures for this sidecar: `status` is 404 (no such sidecar) or 503 (not reachable now)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


CACHE_TTL_S = 1.0
FETCH_TIMEOUT_S = 2.0
ID_PREFIX = "_nomad-task-"  # connect_hook.service_id: _nomad-task-<alloc uuid>-group-...
UUID_LEN = 36
# Runs in the child, inside the namespace: only the standard library (-I -S starts fast).
FETCH_SCRIPT = ("import sys, urllib.request\n"
                "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]))"
                ".read().decode())\n")


@dataclass(frozen=True)
class Located:
    sidecar_id: str
    service: str
    alloc_id: str
    netns: str
    admin: str  # "127.0.0.2:19000"
    public_port: int
    upstreams: tuple[str, ...]


def locate(ctx: AgentContext, platform: Platform, sidecar_id: str) -> Located:
    """Where a sidecar's admin is; Unavailable 404/503 when there is no such running sidecar."""
    rec = ctx.state.get("service", sidecar_id)
    svc = rec.value if rec else None
    if svc is None:
        raise Unavailable(404, f"Unknown service ID {sidecar_id!r}")
    if svc.get("Kind") != "connect-proxy":
        raise Unavailable(404, f"service {sidecar_id!r} is not a sidecar proxy (Kind {svc.get('Kind') or 'typical'!r})")
    proxy = svc.get("Proxy") or {}
    alloc_id = sidecar_id[len(ID_PREFIX):len(ID_PREFIX) + UUID_LEN] if sidecar_id.startswith(ID_PREFIX) else ""
    arec = ctx.state.get("alloc", alloc_id) if alloc_id else None
    if arec is None:
        raise Unavailable(503, f"sidecar {sidecar_id} is not run by this agent's Nomad; its Envoy admin "
                             "interface is wherever that Envoy was started")
    alloc = arec.value
    if alloc.get("ClientStatus") != "running" or alloc.get("DesiredStatus") != "run":
        raise Unavailable(503, f"allocation {alloc_id[:8]} is {alloc.get('ClientStatus')} "
                             f"(desired {alloc.get('DesiredStatus')})")
    tg: dict[str, Any] = next((g for g in alloc["Job"].get("TaskGroups") or [] if g["Name"] == alloc["TaskGroup"]), {})
    services = connect_hook.sidecar_services(tg)
    index = next((i for i, s in enumerate(services)
                  if connect_hook.service_id(alloc_id, tg["Name"], s) + connect_hook.SIDECAR_SUFFIX == sidecar_id),
                 None)
    if index is None:
        raise Unavailable(503, f"allocation {alloc_id[:8]} runs no sidecar with ID {sidecar_id}")
    name = services[index]["Name"]
    tasks = list(tg.get("Tasks") or [])
    task = next((t["Name"] for t in tasks if t.get("Kind") == connect_hook.KIND_PREFIX + name),
                connect_hook.TASK_PREFIX + name)
    task_state = ((alloc.get("TaskStates") or {}).get(task) or {}).get("State") or "pending"
    if task_state != "running":
        raise Unavailable(503, f"sidecar task {task} of allocation {alloc_id[:8]} is {task_state}")
    netns = platform.network_path(alloc_id)
    if netns is None:
        raise Unavailable(503, f"allocation {alloc_id[:8]} has no network namespace on this host")
    port = (proxy.get("Config") or {}).get("bind_port") or svc.get("Port")
    return Located(sidecar_id, str(proxy.get("DestinationServiceName") or name), alloc_id, netns,
                   f"{connect_hook.ADMIN_ADDRESS}:{connect_hook.ADMIN_BASE_PORT + index}", int(port),
                   tuple(u["DestinationName"] for u in proxy.get("Upstreams") or []))


def fetch_in_netns(netns: str, url: str, timeout: float = FETCH_TIMEOUT_S) -> str:
    """GET `url` from inside the network namespace at `netns`; Unavailable 503 on any failure."""
    nsenter = shutil.which("nsenter")
    if nsenter is None:
        raise Unavailable(503, "nsenter not found in PATH (install util-linux) to reach the sidecar's admin")
    argv = [nsenter, f"--net={netns}", sys.executable, "-I", "-S", "-c", FETCH_SCRIPT, url, str(timeout * 0.75)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Unavailable(503, f"Envoy admin {url} did not answer within {timeout:g}s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise Unavailable(503, f"Envoy admin {url}: {last}")
    return done.stdout


class SidecarStats:
    """The figures per sidecar, each fetched at most once per `ttl_s`, callers sharing a fetch."""

    def __init__(self, ctx: AgentContext, ttl_s: float = CACHE_TTL_S):
        self.ctx = ctx
        self.platform = Platform(ctx)  # only network_path: which namespace belongs to an alloc
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._cache: dict[str, tuple[float, int, Any]] = {}  # id -> (time, status, body)

    def get(self, sidecar_id: str) -> tuple[int, Any]:
        """(200, figures JSON) or (404/503, reason)."""
        with self._lock:
            key_lock = self._key_locks.setdefault(sidecar_id, threading.Lock())
        with key_lock:
            hit = self._cache.get(sidecar_id)
            if hit and time.monotonic() - hit[0] < self.ttl_s:
                return hit[1], hit[2]
            body: dict[str, Any] | str  # the figures, or why there are none
            try:
                status, body = 200, self._read(sidecar_id)
            except Unavailable as e:
                status, body = e.status, e.message
            if status == 404:  # cheap to answer again; keeps unknown ids out of the cache
                return status, body
            with self._lock:
                # Drop entries long expired, so ids of stopped allocations do not pile up.
                now = time.monotonic()
                for k in [k for k, v in self._cache.items() if now - v[0] > 60 * self.ttl_s]:
                    del self._cache[k]
                self._cache[sidecar_id] = (time.monotonic(), status, body)
            return status, body

    def prometheus(self, sidecar_id: str, filter_regex: str | None = None) -> tuple[int, str]:
        """(200, Envoy's `/stats/prometheus` text, only the stats `filter_regex` matches) or (404/503, reason).
        Fetched at each call, not cached: a release reads each sidecar once per interval, and the
        figures it compares must be from the moment it asks."""
        try:
            where = locate(self.ctx, self.platform, sidecar_id)
            query = f"?filter={quote(filter_regex, safe='')}" if filter_regex else ""
            return 200, fetch_in_netns(where.netns, f"http://{where.admin}/stats/prometheus{query}")
        except Unavailable as e:
            return e.status, e.message

    def _read(self, sidecar_id: str) -> dict[str, Any]:
        where = locate(self.ctx, self.platform, sidecar_id)
        url = f"http://{where.admin}/stats?format=json&filter={quote(admin_stats.STATS_FILTER, safe='')}"
        body = fetch_in_netns(where.netns, url)
        try:
            stats = admin_stats.parse_stats(body)
        except ValueError as e:
            raise Unavailable(503, f"Envoy admin {where.admin}: answer is not stats JSON: {e}") from None
        figs = admin_stats.figures(stats, where.public_port, where.upstreams)
        return {"ID": where.sidecar_id, "Service": where.service, "AllocID": where.alloc_id,
                "Admin": where.admin, "FetchedAt": time.time(), "Figures": figs.to_json()}

