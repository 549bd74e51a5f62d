"""A service's routing as the service page shows it, from Consul's own config entries, and a running
`nomadmesh release` as the cluster shows it. Pure: entries and a Nomad deployment in, views out.

    routing(resolver, splitter, router)  -> Routing   resolver subsets, splits, routes (None: no entry)
    release_of(resolver, splitter, deployment) -> ReleaseView | None

Everything comes from what any Consul and Nomad hold (`/v1/config/<kind>/<name>`,
`/v1/job/<job>/deployment`), so the panel reads the same on the dev agent and on a real cluster.
A release is recognised by the Meta it writes on its entries (`nomadmesh-release: <id>`; the names
are in mesh/release_marks.py, shared with the release that writes them). The current canary
weight is the splitter's; which step of how many, and the verdict on the step before, are the
splitter's Meta too (`nomadmesh-release-steps`, `-step`, `-last`), written at each step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nomadmesh.mesh.release_marks import CANARY, LAST_KEY, RELEASE_KEY, STEP_KEY, STEPS_KEY

Entry = dict[str, Any]


@dataclass(frozen=True)
class Subset:
    name: str
    filter: str
    only_passing: bool
    default: bool


@dataclass(frozen=True)
class Split:
    weight: float
    service: str  # the splitter's own service unless it sends elsewhere
    subset: str  # "" for the service's default subset


@dataclass(frozen=True)
class Route:
    match: str  # "PathPrefix=/v2 Methods=GET", or "every request"
    destination: str  # "api (subset v2), PrefixRewrite=/"


@dataclass(frozen=True)
class Routing:
    subsets: tuple[Subset, ...]
    redirect: str  # where the resolver sends the service instead, "" when it does not
    failover: tuple[str, ...]  # "subset or *: targets"
    splits: tuple[Split, ...]
    routes: tuple[Route, ...]
    entries: tuple[str, ...]  # which of the three entries exist, by kind

    @property
    def empty(self) -> bool:
        return not self.entries


@dataclass(frozen=True)
class ReleaseView:
    release_id: str
    canary_weight: float | None  # the splitter's share to the canary subset; None when no split is in place
    deployment_id: str
    deployment_status: str  # Nomad's: running, successful, failed...
    deployment_description: str
    canaries_wanted: int
    canaries_placed: int
    canaries_healthy: int
    promoted: bool
    steps: tuple[int, ...] = ()  # the canary's percent at each step, as the splitter publishes them
    step: int = 0  # the current one, from 1 (0: not published)
    last_verdict: str = ""  # how the step before was judged


def _progress(splitter: Entry | None) -> tuple[tuple[int, ...], int, str]:
    """The release's steps, current step and last verdict from the splitter's Meta; what is missing or
    malformed (someone else's writing) reads as not published."""
    meta = _meta(splitter)
    try:
        steps = tuple(int(s) for s in str(meta.get(STEPS_KEY) or "").split(",") if s)
        step = int(meta.get(STEP_KEY) or 0)
    except ValueError:
        return (), 0, ""
    if not 1 <= step <= len(steps):
        return (), 0, ""
    return steps, step, str(meta.get(LAST_KEY) or "")


def _meta(entry: Entry | None) -> dict[str, Any]:
    return (entry or {}).get("Meta") or {}


def _match_text(match: Entry | None) -> str:
    http = (match or {}).get("HTTP") or {}
    parts = [f"{k}={http[k]}" for k in ("PathExact", "PathPrefix", "PathRegex") if http.get(k)]
    if http.get("Methods"):
        parts.append("Methods=" + ",".join(http["Methods"]))
    for kind, key in (("Header", "Header"), ("Query", "QueryParam")):
        for h in http.get(key) or []:
            how = next((f"{op} {h[op]}" for op in ("Exact", "Prefix", "Suffix", "Regex") if h.get(op)), "present")
            parts.append(f"{'not ' if h.get('Invert') else ''}{kind}[{h.get('Name', '')}] {how}")
    return " ".join(parts) or "every request"


def _destination_text(dest: Entry | None, service: str) -> str:
    d = dest or {}
    text = d.get("Service") or service
    if d.get("ServiceSubset"):
        text += f" (subset {d['ServiceSubset']})"
    extras = [f"{k}={d[k]}" for k in ("PrefixRewrite", "RequestTimeout", "NumRetries") if d.get(k)]
    return ", ".join([text, *extras])


def _failover_text(failover: Entry) -> str:
    """Where a resolver's failover goes: its targets, else its service, subset and datacenters."""
    def one(t: Entry) -> str:
        return "/".join(str(t[k]) for k in ("Service", "ServiceSubset", "Datacenter", "Peer") if t.get(k)) or "?"

    if failover.get("Targets"):
        return ", ".join(one(t) for t in failover["Targets"])
    dcs = ", ".join(failover.get("Datacenters") or [])
    return " in ".join(x for x in (one(failover) if failover.get("Service") or failover.get("ServiceSubset")
                                   else "", dcs) if x) or "?"


def routing(service: str, resolver: Entry | None, splitter: Entry | None, router: Entry | None) -> Routing:
    """The three entries of `service`'s discovery chain, as the service page shows them."""
    res = resolver or {}
    default = res.get("DefaultSubset") or ""
    subsets = tuple(Subset(name, str((s or {}).get("Filter") or ""), bool((s or {}).get("OnlyPassing")),
                           name == default)
                    for name, s in sorted((res.get("Subsets") or {}).items()))
    redirect = res.get("Redirect") or {}
    failover = tuple(f"{key} → {_failover_text(f or {})}" for key, f in sorted((res.get("Failover") or {}).items()))
    splits = tuple(Split(float(s.get("Weight") or 0), s.get("Service") or service, s.get("ServiceSubset") or "")
                   for s in (splitter or {}).get("Splits") or [])
    routes = tuple(Route(_match_text(r.get("Match")), _destination_text(r.get("Destination"), service))
                   for r in (router or {}).get("Routes") or [])
    kinds = tuple(k for k, e in (("service-resolver", resolver), ("service-splitter", splitter),
                                 ("service-router", router)) if e)
    return Routing(subsets, _destination_text(redirect, service) if redirect else "", failover, splits, routes,
                   kinds)


def release_of(resolver: Entry | None, splitter: Entry | None, deployment: Entry | None) -> ReleaseView | None:
    """The running release, when the service's resolver or splitter carries one's Meta; None otherwise."""
    release_id = _meta(splitter).get(RELEASE_KEY) or _meta(resolver).get(RELEASE_KEY)
    if not release_id:
        return None
    weight = next((float(s.get("Weight") or 0) for s in (splitter or {}).get("Splits") or []
                   if s.get("ServiceSubset") == CANARY), 0.0 if splitter else None)
    dep = deployment or {}
    groups = (dep.get("TaskGroups") or {}).values()
    wanted = sum(int(g.get("DesiredCanaries") or 0) for g in groups)
    placed = sum(len(g.get("PlacedCanaries") or []) for g in groups)
    healthy = sum(min(int(g.get("HealthyAllocs") or 0), int(g.get("DesiredCanaries") or 0)) for g in groups)
    promoted = bool(groups) and all(g.get("Promoted") for g in groups if g.get("DesiredCanaries"))
    return ReleaseView(str(release_id), weight, dep.get("ID", ""), dep.get("Status", ""),
                       dep.get("StatusDescription", ""), wanted, placed, healthy, promoted and wanted > 0,
                       *_progress(splitter))
