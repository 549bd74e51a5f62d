"""Does every declared upstream edge work? The check `deploy` runs after its deployments, and `status`.

An edge `invoice -> tax` (invoice's job declares tax as a Connect upstream) works when:

* the intentions let invoice call tax, evaluated as Consul's /v1/connect/intentions/check does
  (precedence, wildcards, default policy; `nomadmesh.mesh.intentions.evaluate`). An L7 source
  cannot be decided from names: like Consul's check we say so, and count the edge as working when
  some requests get through (a permission allows, or unmatched requests get a default allow);
* tax has at least one healthy Connect instance (/v1/health/connect/tax?passing: its sidecar and
  its own checks pass), or there is nothing to call.

`edges_from_jobs` and `check_edge` are pure; `verify_edges` reads Consul (one intention list, one
policy probe, one health read per destination) and waits a little for health, never for intentions.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import consul as consul_lib

from nomadmesh.deploy.consul_api import consul_errors
from nomadmesh.deploy.intentions import DefaultPolicy, list_intentions, load_default_policy
from nomadmesh.mesh.intentions import Intention, evaluate, sort_by_precedence

HEALTH_WAIT_S = 10.0  # Consul's health can trail Nomad's deployment verdict by a check interval


@dataclass(frozen=True)
class EdgeCheck:
    source: str
    destination: str
    verdict: str  # "allow" | "deny" | "per-request" (L7)
    rule: str  # the deciding rule, as `intent check` prints it
    healthy: int  # healthy Connect instances of the destination
    ok: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "destination": self.destination, "ok": self.ok, "verdict": self.verdict,
                "rule": self.rule, "healthy_instances": self.healthy, "message": self.message}


def edges_from_jobs(jobs: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(service, upstream) for every Connect upstream the jobs declare, sorted, without duplicates."""
    out: set[tuple[str, str]] = set()
    for job in jobs:
        for group in job.get("TaskGroups") or []:
            for service in group.get("Services") or []:
                proxy = (((service.get("Connect") or {}).get("SidecarService") or {}).get("Proxy")) or {}
                for upstream in proxy.get("Upstreams") or []:
                    if service.get("Name") and upstream.get("DestinationName"):
                        out.add((service["Name"], upstream["DestinationName"]))
    return sorted(out)


def check_edge(source: str, destination: str, intentions: list[Intention], default_allow: bool,
               healthy: int) -> EdgeCheck:
    """Pure: the verdict for one edge, given the intentions (any order) and the destination's health."""
    decision = evaluate(source, destination, intentions, default_allow)
    rule = str(decision.reason)
    if decision.intention is not None and decision.intention.is_l7:
        perms = decision.intention.permissions
        some = any(p.action == "allow" for p in perms) or default_allow
        verdict, allowed = "per-request", some
        said = (f"allowed for some requests: the L7 permissions of {decision.intention.source} => "
                f"{decision.intention.destination} decide per request" if some else
                f"denied: every L7 permission of {decision.intention.source} => {decision.intention.destination} "
                f"denies and the default policy is deny")
    else:
        verdict, allowed = ("allow" if decision.allowed else "deny"), decision.allowed
        said = f"{'allowed' if allowed else 'denied'} by {rule}"
    instances = f"{healthy} healthy Connect instance{'s' if healthy != 1 else ''}"
    if allowed and healthy == 0:
        said += f", but {destination} has no healthy Connect instance (/v1/health/connect/{destination}?passing)"
    else:
        said += f"; {destination} has {instances}"
    return EdgeCheck(source, destination, verdict, rule, healthy, allowed and healthy > 0, said)


def healthy_connect_instances(consul: consul_lib.Consul, service: str) -> int:
    with consul_errors(consul):
        _, nodes = consul.health.connect(service, passing=True)
    return len(nodes or [])


def verify_edges(consul: consul_lib.Consul, edges: Iterable[tuple[str, str]], policy: DefaultPolicy | None = None,
                 health_wait_s: float = HEALTH_WAIT_S, sleep: Callable[[float], None] = time.sleep) -> list[EdgeCheck]:
    """Check every edge against the target's intentions and health; in the edges' order."""
    edges = list(edges)
    if not edges:
        return []
    intentions = sort_by_precedence(list_intentions(consul))
    default_allow = (policy or load_default_policy(consul)).allow
    deadline = time.monotonic() + health_wait_s
    health: dict[str, int] = {}
    while True:
        for dst in dict.fromkeys(d for _, d in edges):
            if not health.get(dst):
                health[dst] = healthy_connect_instances(consul, dst)
        if all(health.values()) or time.monotonic() >= deadline:
            break
        sleep(0.25)
    return [check_edge(s, d, intentions, default_allow, health[d]) for s, d in edges]
