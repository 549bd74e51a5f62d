"""Consul's checks across discovery-chain entries, with Consul's error texts. Pure.

Consul compiles the discovery chain of every service a config-entry write touches and refuses
the write (500) when the chain does not compile. Two of its refusals matter here:

* a service-router or service-splitter on a service whose protocol (service-defaults, else
  proxy-defaults `global`, else tcp) is not http, http2 or grpc: routing and splitting are L7;
* a route, split, redirect or failover naming a subset that the target service's resolver does
  not define (no resolver: no subsets at all).

    chain_problem(service, lookup, protocol_of) -> Consul's text, or None

`lookup(kind, name)` returns the stored entry (Go field names) or None, with the proposed write
already in place (or the deletion already applied), so the same call serves writes and deletes.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from nomadmesh.mesh.intention_rules import go_quote

ROUTER, SPLITTER, RESOLVER = "service-router", "service-splitter", "service-resolver"
CHAIN_KINDS = (ROUTER, SPLITTER, RESOLVER)
HTTP_LIKE = ("http", "http2", "grpc")

Lookup = Callable[[str, str], "dict[str, Any] | None"]


def _get(obj: Any, key: str) -> Any:
    """`obj[key]` in any spelling (router entries are stored as written: PrefixRewrite or prefix_rewrite)."""
    if not isinstance(obj, dict):
        return None
    wanted = key.lower()
    return next((v for k, v in obj.items() if str(k).replace("_", "").lower() == wanted), None)


def _targets(service: str, lookup: Lookup) -> Iterable[tuple[str, str]]:
    """(service, subset) pairs the chain of `service` resolves through, subsets named explicitly."""
    router = lookup(ROUTER, service)
    for route in _get(router, "Routes") or []:
        dest = _get(route, "Destination") or {}
        yield str(_get(dest, "Service") or service), str(_get(dest, "ServiceSubset") or "")
    yield from _split_services(service, lookup, set())


def _split_services(service: str, lookup: Lookup, seen: set[str]) -> Iterable[tuple[str, str]]:
    if service in seen:
        return
    seen.add(service)
    splitter = lookup(SPLITTER, service)
    for split in _get(splitter, "Splits") or []:
        target = str(_get(split, "Service") or service)
        subset = str(_get(split, "ServiceSubset") or "")
        yield target, subset
        if not subset and target != service:
            yield from _split_services(target, lookup, seen)


def _resolver_subsets(service: str, subset: str, lookup: Lookup) -> Iterable[tuple[str, str]]:
    """The (service, subset) a target resolves to: the resolver's default subset, redirects and failovers."""
    resolver = lookup(RESOLVER, service) or {}
    redirect = resolver.get("Redirect") or {}
    if redirect.get("Service") and redirect["Service"] != service:
        yield str(redirect["Service"]), str(redirect.get("ServiceSubset") or "")  # the subset asked for is dropped
        return
    yield service, subset or str(redirect.get("ServiceSubset") or resolver.get("DefaultSubset") or "")
    for failover in (resolver.get("Failover") or {}).values():
        other = str(failover.get("Service") or "")
        if other and other != service and failover.get("ServiceSubset"):
            yield other, str(failover["ServiceSubset"])


def chain_problem(service: str, lookup: Lookup, protocol_of: Callable[[str], str]) -> str | None:
    """Consul's refusal text for the chain of `service`, or None when it compiles."""
    advanced = lookup(ROUTER, service) is not None or lookup(SPLITTER, service) is not None
    if advanced:
        protocol = protocol_of(service)
        if protocol not in HTTP_LIKE:
            return (f"discovery chain {go_quote(service)} uses a protocol {go_quote(protocol)} that does not permit "
                    "advanced routing or splitting behavior")
    return subset_problem(service, lookup)


def subset_problem(service: str, lookup: Lookup) -> str | None:
    """Consul's text when the chain of `service` names a subset its resolver does not define."""
    wanted = [(service, ""), *_targets(service, lookup)]
    for target, subset in wanted:
        for name, sub in _resolver_subsets(target, subset, lookup):
            if sub and sub not in ((lookup(RESOLVER, name) or {}).get("Subsets") or {}):
                return f"service {go_quote(name)} does not have a subset named {go_quote(sub)}"
    return None


def graph_problem(services: Iterable[str], lookup: Lookup, protocol_of: Callable[[str], str]) -> str | None:
    """The first refusal among the chains of `services` (sorted, so the answer is stable)."""
    for service in sorted(set(services)):
        problem = chain_problem(service, lookup, protocol_of)
        if problem:
            return problem
    return None
