"""What of a discovery-chain entry the dev agent's data plane cannot serve. Pure.

Consul (CE) accepts these fields, but the agent has one datacenter, no cluster peers and only the
default namespace and partition, so its Envoys could not honour them: a redirect or failover
target there would get no endpoints (or silently the local ones). Rather than store an entry and
ignore part of it, the agent refuses it (400) after Consul's own decoding and Validate have passed:

    resolver  Redirect.Peer / .Datacenter, Failover[*].Datacenters / .Targets[i].Peer /
              .Targets[i].Datacenter naming another datacenter, Failover[*].Policy.Regions
    splitter  Splits[i].Namespace / .Partition other than "default"
    router    Routes[i].Destination.Namespace / .Partition other than "default",
              Match.HTTP.Header[j].Contains / .IgnoreCase (the route builder has no such matcher)

What Consul CE itself refuses (namespaces, partitions and sameness groups in a resolver, failover
policies, prioritize-by-locality, a top-level Namespace) is refused earlier with Consul's text
(`nomadmesh.mesh.resolver_rules`, `config_entries`).
"""
from __future__ import annotations

from typing import Any

from nomadmesh.agent.consul.discovery_chain import canonical
from nomadmesh.mesh.intention_rules import go_quote

SUFFIX = "is not supported by the nomadmesh dev agent"


def problem(entry: dict[str, Any], datacenter: str) -> str | None:
    """The first field of a decoded, valid entry the agent cannot serve, as the 400's text; None if all can."""
    kind, e = entry.get("Kind"), canonical(entry)
    if kind == "service-resolver":
        return _resolver(e, datacenter)
    if kind == "service-splitter":
        return _first(_default_only(split, f"Splits[{i}].") for i, split in enumerate(e.get("Splits") or []))
    if kind == "service-router":
        return _first(_route(_dict(route), i) for i, route in enumerate(e.get("Routes") or []))
    return None


def _dict(value: Any) -> dict[str, Any]:
    """A router part as a dict: its rules check paths and matchers, not every part's type."""
    return value if isinstance(value, dict) else {}


def _first(problems: Any) -> str | None:
    return next((p for p in problems if p), None)


def _peer(where: str) -> str:
    return f"{where}Peer {SUFFIX} (it has no cluster peers)"


def _other_dc(where: str, dc: str, datacenter: str) -> str:
    return f"{where}Datacenter {go_quote(dc)} {SUFFIX} (its only datacenter is {go_quote(datacenter)})"


def _resolver(e: dict[str, Any], datacenter: str) -> str | None:
    redirect = e.get("Redirect") or {}
    if redirect.get("Peer"):
        return _peer("Redirect.")
    if redirect.get("Datacenter") not in (None, "", datacenter):
        return _other_dc("Redirect.", redirect["Datacenter"], datacenter)
    for subset, failover in sorted((e.get("Failover") or {}).items()):
        at = f"Bad Failover[{go_quote(subset)}]: "
        for dc in failover.get("Datacenters") or []:
            if dc != datacenter:
                return _other_dc(at, dc, datacenter)
        for i, target in enumerate(failover.get("Targets") or []):
            where = f"Bad Failover[{go_quote(subset)}].Targets[{i}]: "
            if target.get("Peer"):
                return _peer(where)
            if target.get("Datacenter") not in (None, "", datacenter):
                return _other_dc(where, target["Datacenter"], datacenter)
        if (failover.get("Policy") or {}).get("Regions"):
            return f"{at}Policy.Regions {SUFFIX}"
    return None


def _default_only(dest: dict[str, Any], where: str) -> str | None:
    for key in ("Namespace", "Partition"):
        if dest.get(key) not in (None, "", "default"):
            return (f"{where}{key} {go_quote(str(dest[key]))} {SUFFIX} "
                    f"(it has the default {key.lower()} only)")
    return None


def _route(route: dict[str, Any], i: int) -> str | None:
    problem_ = _default_only(_dict(route.get("Destination")), f"Routes[{i}].Destination.")
    if problem_:
        return problem_
    headers = _dict(_dict(route.get("Match")).get("HTTP")).get("Header")
    for j, header in enumerate(headers if isinstance(headers, list) else []):
        for key in ("Contains", "IgnoreCase"):
            if _dict(header).get(key):
                return f"Routes[{i}].Match.HTTP.Header[{j}].{key} {SUFFIX}"
    return None
