"""The validations page: what `nomadmesh mesh check` and `plan` report, as findings that link to the
graph. Pure: the CLI's own results in, findings out.

    mesh_findings(mesh)              mesh.check.check_edges on the upstreams the catalog's sidecars
                                     declare (denied upstreams, unused allows, hidden denies, per request)
    l7_on_tcp(mesh, protocols)       L7 intentions whose destination speaks tcp (Consul refuses to
                                     write them; one that got there is enforced as deny)
    plan_findings(plan, orphans)     deploy.live's plan: drift, changed or new jobs, conflicts, orphans
    spec_findings(problems)          what loading the definitions refused (L7 permissions on a tcp
                                     service among them), as `validate` prints it

Each finding links to the edge (`source>destination`) or the node it is about, when it has one.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from nomadmesh.deploy.plan import Plan
from nomadmesh.errors import Problem
from nomadmesh.mesh import check
from nomadmesh.mesh.chain_rules import HTTP_LIKE
from nomadmesh.mesh.intentions import WILDCARD
from nomadmesh.ui.model import Mesh

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Definitions:
    """The project folder `nomadmesh ui --services` was given: what `plan` compares the cluster with."""

    services_dir: Path
    project_file: Path | None = None
    env: str | None = None


@dataclass(frozen=True)
class Finding:
    severity: str  # error | warning | info
    code: str  # mesh check's codes, l7-on-tcp, drift, job-changed, job-new, job-conflict, orphan, definitions
    message: str
    edge: tuple[str, str] | None = None  # the edge it is about (source, destination)
    node: str | None = None  # else the service it is about

    @property
    def edge_arg(self) -> str:
        return f"{self.edge[0]}>{self.edge[1]}" if self.edge else ""


def _about(severity: str, code: str, message: str, source: str, destination: str) -> Finding:
    """A finding about `source → destination`: linked to that edge when both ends are services, else
    to the one named end (a wildcard is neither)."""
    if WILDCARD not in (source, destination):
        return Finding(severity, code, message, edge=(source, destination))
    named = destination if destination != WILDCARD else source
    return Finding(severity, code, message, node=None if named == WILDCARD else named)


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), f.code, f.message))


def live_upstreams(mesh: Mesh) -> list[tuple[str, str, str]]:
    """Every declared upstream as `mesh check` takes them, read from the sidecars' registrations."""
    return [(s.name, u.destination, f"{s.name}'s sidecar registration") for s in mesh.services for u in s.upstreams]


def mesh_findings(mesh: Mesh) -> list[Finding]:
    found = check.check_edges(live_upstreams(mesh), {s.name for s in mesh.services}, mesh.intentions,
                              mesh.default_allow)
    return [_about(f.severity, f.code, f.message, f.source, f.destination) for f in found]


def l7_destinations(mesh: Mesh) -> list[str]:
    """Destinations with an L7 intention: the only ones whose protocol `l7_on_tcp` needs."""
    return sorted({i.destination for i in mesh.intentions if i.is_l7 and i.destination != WILDCARD})


def l7_on_tcp(mesh: Mesh, protocols: Mapping[str, str]) -> list[Finding]:
    return [_about("error", "l7-on-tcp",
                   f"{i.source} => {i.destination} has L7 permissions, but {i.destination} speaks "
                   f"{protocols[i.destination]}: its proxy cannot read HTTP, so the intention denies every call",
                   i.source, i.destination)
            for i in mesh.intentions
            if i.is_l7 and i.destination in protocols and protocols[i.destination] not in HTTP_LIKE]


def plan_findings(plan: Plan, orphans: Iterable[str]) -> list[Finding]:
    out = []
    for c in plan.changes:
        if c.action == "noop":
            continue
        if c.action == "conflict":
            out.append(Finding("error", "job-conflict", f"job {c.name}: {c.reason}", node=c.name))
        elif c.reason.startswith("drift"):
            out.append(Finding("warning", "drift", f"job {c.name}: {c.reason}; `deploy` registers the definition "
                                                   "again", node=c.name))
        else:
            code = "job-new" if c.action == "create" else "job-changed"
            out.append(Finding("info", code, f"job {c.name}: {c.action} ({c.reason}); `deploy` applies it",
                               node=c.name))
    out += [Finding("warning", "orphan", f"job {name}: orphan (no definition renders it any more; "
                                         "`deploy --prune` stops it)", node=name) for name in orphans]
    return out


def spec_findings(problems: Iterable[Problem]) -> list[Finding]:
    return [Finding("error" if p.severity == "error" else "warning", "definitions", str(p)) for p in problems]
