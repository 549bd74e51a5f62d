"""What the UI shows, built from raw Consul/Nomad API answers. Pure functions, no I/O.

`build_mesh(health, allocs, entries, default_allow)` turns `/v1/health/service/<name>` rows (per
service name; `health_rows` joins them from whole-mesh reads),
`/v1/allocations` stubs and `service-intentions` config entries into a `Mesh`:
services with their instances, each instance with its checks, its sidecar proxy (matched by
`Proxy.DestinationServiceID`) and the Nomad allocation it runs in (from Nomad's service ID,
`_nomad-task-<alloc>-...`). `edges(mesh)` gives the mesh's edges with the intention deciding each.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from nomadmesh.mesh import intentions as ixn

CONSUL_SERVICE = "consul"  # the ID and name of the service a Consul server registers for itself
_SEVERITY = {"passing": 0, "warning": 1, "critical": 2}
_NOMAD_ID = re.compile(r"^_nomad-task-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-")

# Edge verdicts, as the page and the topology colour them.
ALLOWED = "allowed"
DENIED = "denied"  # a declared upstream an intention denies on purpose
WARNING = "warning"  # a declared upstream nothing allows: the default policy (deny) blocks it
UNUSED = "unused"  # intention only: an exact allow no upstream declares, from a caller without transparent proxy
TPROXY = "tproxy"  # an exact allow a caller in transparent proxy mode reaches without declaring an upstream
PER_REQUEST = "per-request"  # an intention with L7 permissions decides: each request by its path, method, headers


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    output: str = ""
    kind: str = ""


@dataclass(frozen=True)
class Upstream:
    destination: str
    local_bind_port: int | None


@dataclass(frozen=True)
class Alloc:
    id: str
    job: str
    group: str
    status: str
    tasks: tuple[str, ...] = ()
    job_version: int | None = None  # which version of the job it runs (a release's stable vs canary)

    @property
    def short_id(self) -> str:
        return self.id[:8]


@dataclass(frozen=True)
class Sidecar:
    id: str
    name: str
    address: str
    port: int
    health: str
    checks: tuple[Check, ...]
    upstreams: tuple[Upstream, ...]
    mode: str = ""  # the registration's Proxy.Mode: "transparent", or "" / "direct" (upstreams only)

    @property
    def up(self) -> bool:
        return self.health == "passing"


@dataclass(frozen=True)
class Instance:
    id: str
    address: str
    port: int
    tags: tuple[str, ...]
    health: str
    checks: tuple[Check, ...]
    sidecar: Sidecar | None
    alloc: Alloc | None


@dataclass(frozen=True)
class Service:
    name: str
    tags: tuple[str, ...]
    instances: tuple[Instance, ...]

    @property
    def health(self) -> str:
        return worst(i.health for i in self.instances)

    @property
    def upstreams(self) -> tuple[Upstream, ...]:
        seen: dict[str, Upstream] = {}
        for inst in self.instances:
            for u in inst.sidecar.upstreams if inst.sidecar else ():
                seen.setdefault(u.destination, u)
        return tuple(sorted(seen.values(), key=lambda u: u.destination))

    @property
    def has_sidecar(self) -> bool:
        return any(i.sidecar for i in self.instances)

    @property
    def transparent(self) -> bool:
        """Its sidecars run in transparent proxy mode: it may call any service an intention lets it."""
        return any(i.sidecar and i.sidecar.mode == "transparent" for i in self.instances)


@dataclass(frozen=True)
class Edge:
    source: str
    destination: str
    verdict: str
    reason: str
    intention: ixn.Intention | None
    local_bind_port: int | None = None


@dataclass(frozen=True)
class Mesh:
    services: tuple[Service, ...]
    intentions: tuple[ixn.Intention, ...]  # in precedence order
    default_allow: bool
    problems: tuple[str, ...] = field(default=())

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)


def worst(statuses: Iterable[str]) -> str:
    """The worst of health statuses (critical > warning > passing); passing when there are none."""
    return max(statuses, key=lambda s: _SEVERITY.get(s, 2), default="passing")


def _checks(row: dict[str, Any]) -> tuple[Check, ...]:
    # Node-level checks (serfHealth) have no ServiceID; they say nothing about this service.
    return tuple(
        Check(name=c.get("Name") or c.get("CheckID", ""), status=c.get("Status", "critical"),
              output=(c.get("Output") or "").strip(), kind=c.get("Type") or "")
        for c in row.get("Checks") or [] if c.get("ServiceID")
    )


def _upstreams(proxy: dict[str, Any] | None) -> tuple[Upstream, ...]:
    return tuple(
        Upstream(u.get("DestinationName", ""), u.get("LocalBindPort"))
        for u in (proxy or {}).get("Upstreams") or [] if u.get("DestinationType", "service") == "service"
    )


def _alloc_of(service_id: str, allocs: dict[str, Alloc]) -> Alloc | None:
    m = _NOMAD_ID.match(service_id)
    return allocs.get(m.group(1)) if m else None


def parse_allocs(stubs: Iterable[dict[str, Any]]) -> dict[str, Alloc]:
    return {
        a["ID"]: Alloc(id=a["ID"], job=a.get("JobID", ""), group=a.get("TaskGroup", ""),
                       status=a.get("ClientStatus", ""), tasks=tuple(sorted(a.get("TaskStates") or {})),
                       job_version=a.get("JobVersion"))
        for a in stubs if a.get("ID")
    }


def parse_intentions(entries: Iterable[dict[str, Any]]) -> tuple[list[ixn.Intention], list[str]]:
    """Every source of every service-intentions entry, and a message per entry that cannot be read."""
    found: list[ixn.Intention] = []
    problems: list[str] = []
    for entry in entries:
        try:
            found += ixn.from_config_entry(entry)
        except ixn.IntentionError as e:
            problems.append(f"service-intentions {entry.get('Name')!r}: {e}")
    return ixn.sort_by_precedence(found), problems


def is_consul_server(service: dict[str, Any]) -> bool:
    """Consul's own `consul` service, which every Consul server registers (ID and name "consul"): the
    control plane, not a service of the mesh, so the graph leaves it out."""
    return service.get("ID") == CONSUL_SERVICE and service.get("Service") == CONSUL_SERVICE


def health_rows(nodes: Iterable[dict[str, Any]], services_of: dict[str, dict[str, dict[str, Any]]],
                checks: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """`/v1/health/service/<name>` rows for every service name, joined from a few whole-mesh reads:
    `/v1/catalog/nodes`, `/v1/catalog/node/<node>`'s Services per node (`services_of`) and
    `/v1/health/state/any`. As in Consul, an instance's checks are its node's (no ServiceID) and its
    own, in the order they were listed."""
    checks_of: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
    for pos, c in enumerate(checks):
        checks_of.setdefault((c.get("Node", ""), c.get("ServiceID") or ""), []).append((pos, c))
    out: dict[str, list[dict[str, Any]]] = {}
    for node in nodes:
        name = node.get("Node", "")
        for svc in (services_of.get(name) or {}).values():
            mine = sorted(checks_of.get((name, ""), []) + checks_of.get((name, svc.get("ID", "")), []),
                          key=lambda pc: pc[0])
            out.setdefault(svc.get("Service", ""), []).append(
                {"Node": node, "Service": svc, "Checks": [c for _, c in mine]})
    return out


def build_mesh(health: dict[str, list[dict[str, Any]]], alloc_stubs: Iterable[dict[str, Any]],
               entries: Iterable[dict[str, Any]], default_allow: bool,
               problems: Iterable[str] = ()) -> Mesh:
    allocs = parse_allocs(alloc_stubs)
    rows = [r for name in sorted(health) for r in health[name] if not is_consul_server(r.get("Service") or {})]
    sidecars: dict[str, Sidecar] = {}
    for r in rows:
        svc = r.get("Service") or {}
        if svc.get("Kind") != "connect-proxy":
            continue
        proxy = svc.get("Proxy") or {}
        checks = _checks(r)
        sidecars[proxy.get("DestinationServiceID", "")] = Sidecar(
            id=svc.get("ID", ""), name=svc.get("Service", ""),
            address=svc.get("Address") or (r.get("Node") or {}).get("Address", ""),
            port=svc.get("Port", 0), health=worst(c.status for c in checks), checks=checks,
            upstreams=_upstreams(proxy), mode=str(proxy.get("Mode") or ""))
    by_name: dict[str, list[Instance]] = {}
    for r in rows:
        svc = r.get("Service") or {}
        if svc.get("Kind"):  # proxies and gateways are shown beside their service, not as services
            continue
        checks = _checks(r)
        by_name.setdefault(svc.get("Service", ""), []).append(Instance(
            id=svc.get("ID", ""), address=svc.get("Address") or (r.get("Node") or {}).get("Address", ""),
            port=svc.get("Port", 0), tags=tuple(svc.get("Tags") or ()),
            health=worst(c.status for c in checks), checks=checks,
            sidecar=sidecars.get(svc.get("ID", "")), alloc=_alloc_of(svc.get("ID", ""), allocs)))
    services = tuple(
        Service(name=name, tags=tuple(dict.fromkeys(t for i in insts for t in i.tags)),
                instances=tuple(sorted(insts, key=lambda i: i.id)))
        for name, insts in sorted(by_name.items())
    )
    found, bad = parse_intentions(entries)
    return Mesh(services, tuple(found), default_allow, tuple(problems) + tuple(bad))


def decide(mesh: Mesh, source: str, destination: str) -> tuple[str, str, ixn.Intention | None]:
    """The verdict for a declared upstream `source → destination`, its reason and deciding intention."""
    d = ixn.evaluate(source, destination, mesh.intentions, mesh.default_allow)
    if d.intention is not None and d.intention.is_l7:  # neither allowed nor denied as a whole
        return PER_REQUEST, d.reason, d.intention
    if d.allowed:
        return ALLOWED, d.reason, d.intention
    if d.intention is None:
        return WARNING, f"declared upstream, but nothing allows it: {d.reason}", None
    return DENIED, d.reason, d.intention


def edges(mesh: Mesh) -> list[Edge]:
    """Declared upstreams with their verdicts, then exact allow intentions no upstream declares: reached
    through the transparent proxy when the caller runs one, else intention only (unused)."""
    out: list[Edge] = []
    declared: set[tuple[str, str]] = set()
    for svc in mesh.services:
        for u in svc.upstreams:
            verdict, reason, intention = decide(mesh, svc.name, u.destination)
            out.append(Edge(svc.name, u.destination, verdict, reason, intention, u.local_bind_port))
            declared.add((svc.name, u.destination))
    transparent = {s.name: s.transparent for s in mesh.services}
    for i in mesh.intentions:
        pair = (i.source, i.destination)
        if (i.action == "allow" and not i.is_l7 and ixn.WILDCARD not in pair and pair not in declared
                and i.source in transparent and i.destination in transparent):
            if transparent[i.source]:
                out.append(Edge(i.source, i.destination, TPROXY,
                                f"allowed; {i.source}'s transparent proxy reaches it without a declared upstream", i))
            else:
                out.append(Edge(i.source, i.destination, UNUSED, "intention only: allowed, but no upstream declares "
                                                                  "it", i))
    return out


def edges_of(mesh: Mesh, name: str) -> tuple[list[Edge], list[Edge]]:
    """(upstream edges from `name`, downstream edges into `name`)."""
    all_edges = edges(mesh)
    return ([e for e in all_edges if e.source == name], [e for e in all_edges if e.destination == name])
