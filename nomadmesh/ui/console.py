"""The live console's view of the mesh: each edge and each service with its traffic. Pure.

`snapshot(mesh, figures, unavailable)` joins what the catalog says (services, their health, their
declared upstreams and the intention deciding each) with the traffic figures of the last minute
(`nomadmesh.mesh.traffic.Figures`, from the dev agent or Prometheus), for the topology page and
`nomadmesh top`. Without figures, `figures_from` says where they would come from.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from nomadmesh.mesh.traffic import EdgeFigures, Figures, ServiceFigures
from nomadmesh.ui import model

ALL_PASSING = "all passing"
SOME_FAILING = "some failing"
NONE_PASSING = "none passing"
NOT_REGISTERED = "not registered"
CSS_HEALTH = {ALL_PASSING: "passing", SOME_FAILING: "warning", NONE_PASSING: "critical"}


@dataclass(frozen=True)
class ServiceView:
    name: str
    health: str  # ALL_PASSING | SOME_FAILING | NONE_PASSING
    instances: int
    passing: int
    versions: dict[str, int]  # job version -> instances ("?" when Nomad does not run it)
    tags: tuple[str, ...]
    figures: ServiceFigures | None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "health": self.health, "instances": self.instances, "passing": self.passing,
                "versions": self.versions, "tags": list(self.tags),
                **({k: v for k, v in self.figures.to_json().items() if k != "name"} if self.figures else {})}


@dataclass(frozen=True)
class EdgeView:
    edge: model.Edge
    destination_health: str  # of the destination's instances, NOT_REGISTERED when it has none
    figures: EdgeFigures | None
    destination_figures: ServiceFigures | None = None  # what the destination's sidecars received, all callers
    only_caller: bool = False  # the figures measure no other caller of the destination

    @property
    def source(self) -> str:
        return self.edge.source

    @property
    def destination(self) -> str:
        return self.edge.destination

    @property
    def broken(self) -> bool:
        """A declared upstream with no registered or no healthy instance to call."""
        return self.edge.verdict != model.UNUSED and self.destination_health in (NOT_REGISTERED, NONE_PASSING)

    @property
    def state(self) -> str:
        """How the graph draws it: "broken" (nothing to call) over the verdict."""
        return "broken" if self.broken else self.edge.verdict

    @property
    def tls_failures(self) -> tuple[float | None, str]:
        """TLS failures per second on this edge and where they were counted: "caller" (the source's
        sidecar, on its cluster for this upstream: the edge's own), "edge" (the destination's public
        listener, when this is its only caller), else "service" (that listener, all callers: Envoy
        counts them per listener, not per caller); (None, "") without figures."""
        f, d = self.figures, self.destination_figures
        if f is not None and f.tls_failures_per_s is not None:
            return f.tls_failures_per_s, "caller"
        if d is None or f is None:
            return None, ""
        return d.tls_failures_per_s, "edge" if self.only_caller else "service"

    @property
    def erroring(self) -> bool:
        f = self.figures
        tls, scope = self.tls_failures
        return f is not None and bool(f.error_share or f.rbac_denied_per_s or f.connect_failures_per_s
                                      or (scope != "service" and tls))

    @property
    def idle(self) -> bool:
        """Figures say no traffic in the window (traffic that stopped fades out)."""
        return self.figures is not None and not self.figures.rps and not self.erroring

    @property
    def label(self) -> tuple[str, str]:
        """Its figures in two short lines: ("2.1 rps", "45% err · p99 4 ms"); ("", "") without figures."""
        f = self.figures
        if f is None:
            return "", ""
        rate = f"{f.rps:.3g} {'rps' if f.unit == 'requests' else 'cx/s'}"
        rest = ([f"{f.error_share * 100:.0f}% err"] if f.error_share is not None else []) + (
            [f"p99 {f.p99_ms:.3g} ms"] if f.p99_ms is not None else [])
        return rate, " · ".join(rest)

    def to_json(self) -> dict[str, Any]:
        i = self.edge.intention
        return {"source": self.source, "destination": self.destination, "verdict": self.edge.verdict,
                "reason": self.edge.reason, "decided_by": f"{i.source} → {i.destination}" if i else "default policy",
                "destination_health": self.destination_health, "broken": self.broken,
                **({k: v for k, v in self.figures.to_json().items() if k not in ("source", "destination")}
                   if self.figures else {}),
                **({"tls_failures_per_s": self.tls_failures[0], "tls_failures_of": self.tls_failures[1]}
                   if self.tls_failures[1] else {})}


@dataclass(frozen=True)
class Snapshot:
    services: tuple[ServiceView, ...]
    edges: tuple[EdgeView, ...]
    figures_from: str  # where the figures come from, or why there are none
    has_figures: bool
    window_s: float

    @property
    def flowing(self) -> bool:
        """Some traffic in the window (the page then refreshes more often)."""
        return any(e.figures and not e.idle for e in self.edges) or any(s.figures and s.figures.rps
                                                                         for s in self.services)

    def to_json(self) -> dict[str, Any]:
        return {"figures_from": self.figures_from, "has_figures": self.has_figures, "window_s": self.window_s,
                "edges": [e.to_json() for e in self.edges], "services": [s.to_json() for s in self.services]}


def health_of(svc: model.Service) -> tuple[str, int]:
    passing = sum(1 for i in svc.instances if i.health == "passing")
    if passing == len(svc.instances):
        return ALL_PASSING, passing
    return (SOME_FAILING if passing else NONE_PASSING), passing


def snapshot(mesh: model.Mesh, figures: Figures | None, unavailable: str = "") -> Snapshot:
    services = []
    health: dict[str, str] = {}
    for s in mesh.services:
        h, passing = health_of(s)
        health[s.name] = h
        versions = Counter(str(i.alloc.job_version) if i.alloc and i.alloc.job_version is not None else "?"
                           for i in s.instances)
        services.append(ServiceView(s.name, h, len(s.instances), passing, dict(sorted(versions.items())), s.tags,
                                    figures.service(s.name) if figures else None))
    callers = Counter(f.destination for f in figures.edges) if figures else Counter[str]()
    edges = tuple(EdgeView(e, health.get(e.destination, NOT_REGISTERED),
                           figures.edge(e.source, e.destination) if figures else None,
                           figures.service(e.destination) if figures else None, callers[e.destination] == 1)
                  for e in model.edges(mesh))
    return Snapshot(tuple(services), edges, figures.source if figures else unavailable, figures is not None,
                    figures.window_s if figures else 0.0)


def filtered(snap: Snapshot, wanted: str) -> Snapshot:
    """Services whose name or a tag contains `wanted` (case-insensitive), and the edges touching them;
    everything when `wanted` is empty."""
    if not wanted:
        return snap
    w = wanted.lower()
    keep = {s.name for s in snap.services if w in s.name.lower() or any(w in t.lower() for t in s.tags)}
    edges = tuple(e for e in snap.edges if e.source in keep or e.destination in keep)
    ends = keep | {e.source for e in edges} | {e.destination for e in edges}
    return Snapshot(tuple(s for s in snap.services if s.name in ends), edges, snap.figures_from, snap.has_figures,
                    snap.window_s)
