"""Consul's checks across discovery-chain entries, with Consul's error texts. Pure.

Consul compiles the discovery chain of every service a config-entry write touches and refuses
the write (500) when it does not compile. The walk here follows Consul's compiler
(agent/consul/discoverychain/compile.go) over the entries: the router of the chain's service
(its routes, then the catch-all), splitters (a split to another service without a subset goes
through that service's splitter), resolvers (redirects, the default subset, failover targets).
It reports, in the order Consul meets them:

* a subset the target's resolver does not define (no resolver: no subsets at all);
* services of one chain with different protocols (`uses inconsistent protocols`);
* a router or splitter in a chain whose protocol (service-defaults, else proxy-defaults `global`,
  else tcp) is not http, http2 or grpc: routing and splitting are L7.

    chain_problem(service, lookup, protocol_of)   -> Consul's text, or None
    graph_problem(services, lookup, protocol_of)  -> the first one among several chains

`lookup(kind, name)` returns the stored entry (Go field names; routers as written) or None, with
the proposed write already in place (or the deletion applied), so the same call serves both.
Not modelled: namespaces, partitions, peers and datacenters (the agent has one of each), and
Consul's circular-redirect text (a redirect loop is simply not followed).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from nomadmesh.mesh.intention_rules import go_quote

ROUTER, SPLITTER, RESOLVER = "service-router", "service-splitter", "service-resolver"
CHAIN_KINDS = (ROUTER, SPLITTER, RESOLVER)
HTTP_LIKE = ("http", "http2", "grpc")

Lookup = Callable[[str, str], "dict[str, Any] | None"]
Target = tuple[str, str]  # (service, subset)


class _GraphError(Exception):
    pass


def _get(obj: Any, key: str) -> Any:
    """`obj[key]` in any spelling (router entries are stored as written: PrefixRewrite or prefix_rewrite)."""
    if not isinstance(obj, dict):
        return None
    wanted = key.lower()
    return next((v for k, v in obj.items() if str(k).replace("_", "").lower() == wanted), None)


def _rewrite(target: Target, opts: Any) -> Target:
    """Consul's rewriteTarget for the fields the agent has: another service drops the subset."""
    service, subset = target
    other = str(_get(opts, "Service") or "")
    if other and other != service:
        service, subset = other, ""
    return service, str(_get(opts, "ServiceSubset") or "") or subset


class _Compiler:
    def __init__(self, service: str, lookup: Lookup, protocol_of: Callable[[str], str]) -> None:
        self.service, self.lookup, self.protocol_of = service, lookup, protocol_of
        self.protocol: str | None = None
        self.advanced = False
        self.splitters: set[str] = set()
        self.resolved: set[Target] = set()

    def record(self, service: str) -> None:
        protocol = (self.protocol_of(service) or "tcp").lower()
        if self.protocol is None:
            self.protocol = protocol
        elif protocol != self.protocol:
            raise _GraphError(f"discovery chain {go_quote(self.service)} uses inconsistent protocols; service "
                              f"{go_quote(service)} has {go_quote(protocol)} which is not {go_quote(self.protocol)}")

    def assemble(self) -> None:
        router = self.lookup(ROUTER, self.service)
        if router is None:
            self.splitter_or_resolver(self.service)
            return
        self.advanced = True
        self.record(self.service)
        for route in _get(router, "Routes") or []:
            dest = _get(route, "Destination") or {}
            service = str(_get(dest, "Service") or self.service)
            subset = str(_get(dest, "ServiceSubset") or "")
            if subset:
                self.resolver((service, subset))
            else:
                self.splitter_or_resolver(service)
        self.splitter_or_resolver(self.service)  # the catch-all route

    def splitter_or_resolver(self, service: str) -> None:
        if not self.splitter(service):
            self.resolver((service, ""))

    def splitter(self, service: str) -> bool:
        if service in self.splitters:
            return True
        splitter = self.lookup(SPLITTER, service)
        if splitter is None:
            return False
        self.splitters.add(service)
        for split in _get(splitter, "Splits") or []:
            target = str(_get(split, "Service") or service)
            subset = str(_get(split, "ServiceSubset") or "")
            if target != service and not subset and self.splitter(target):
                continue
            self.resolver((target, subset))
        self.advanced = True
        return True

    def resolver(self, target: Target, for_failover: bool = False) -> None:
        seen: set[Target] = set()
        while True:
            if target in self.resolved and not for_failover:
                return
            self.record(target[0])
            entry = self.lookup(RESOLVER, target[0]) or {}
            if target in seen:
                return  # a redirect loop: Consul refuses it with its own text; we stop walking
            seen.add(target)
            redirect = entry.get("Redirect")
            if redirect and _rewrite(target, redirect) != target:
                target = _rewrite(target, redirect)
                continue
            if not target[1] and entry.get("DefaultSubset"):
                target = (target[0], str(entry["DefaultSubset"]))
                continue
            if target[1] and target[1] not in (entry.get("Subsets") or {}):
                raise _GraphError(f"service {go_quote(target[0])} does not have a subset named {go_quote(target[1])}")
            break
        if for_failover:
            return
        self.resolved.add(target)
        failovers = entry.get("Failover") or {}
        failover = failovers.get(target[1]) or failovers.get("*")
        if not failover:
            return
        options = failover.get("Targets") or ([] if failover.get("Datacenters") else [failover])
        for opts in options:
            other = _rewrite(target, opts)
            if other != target:
                self.resolver(other, for_failover=True)


def chain_problem(service: str, lookup: Lookup, protocol_of: Callable[[str], str]) -> str | None:
    """Consul's refusal text for the chain of `service`, or None when it compiles."""
    compiler = _Compiler(service, lookup, protocol_of)
    try:
        compiler.assemble()
    except _GraphError as e:
        return str(e)
    if compiler.advanced and compiler.protocol not in HTTP_LIKE:
        return (f"discovery chain {go_quote(service)} uses a protocol {go_quote(compiler.protocol or 'tcp')} that "
                "does not permit advanced routing or splitting behavior")
    return None


def graph_problem(services: Iterable[str], lookup: Lookup, protocol_of: Callable[[str], str]) -> str | None:
    """The first refusal among the chains of `services` (sorted, so the answer is stable)."""
    for service in sorted(set(services)):
        problem = chain_problem(service, lookup, protocol_of)
        if problem:
            return problem
    return None
