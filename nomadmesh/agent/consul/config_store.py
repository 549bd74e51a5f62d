"""Config entries in the agent's state: stored, checked and deleted as Consul's server does.

A write or delete runs inside the caller's State transaction: the CAS check, the L7-protocol
check against the other entries (intentions, ingress gateways, discovery chains: a router or
splitter needs an http-like protocol and the subsets it names) and the write see the same state,
so concurrent writers cannot interleave. EntryError carries Consul's refusal text.
"""
from __future__ import annotations

from typing import Any

from nomadmesh.agent.consul import ingress_gateway as ingress
from nomadmesh.agent.consul.config_entries import EntryError, EntryInvalid, Lookup, protocol_conflict, protocol_of
from nomadmesh.agent.state import Txn
from nomadmesh.mesh import chain_rules, intentions as ixn

KIND = "config"  # State kind; keys are "<Kind>/<Name>"
# Kinds whose write or deletion can change whether a discovery chain compiles.
GRAPH_KINDS = (*chain_rules.CHAIN_KINDS, "service-defaults", "proxy-defaults")


def key(kind: str, name: str) -> str:
    return f"{kind}/{name}"


def lookup_in(txn: Txn) -> Lookup:
    def lookup(kind: str, name: str) -> dict[str, Any] | None:
        rec = txn.get(KIND, key(kind, name))
        return rec.value if rec else None
    return lookup


def write_entry(txn: Txn, entry: dict[str, Any], cas: int | None) -> bool:
    """Store `entry` inside `txn`; False on a CAS mismatch; EntryError if the graph is refused."""
    k = key(entry["Kind"], entry["Name"])
    current = txn.get(KIND, k)
    if cas is not None and (current.modify_index if current else 0) != cas:
        return False
    intentions = [r.value for r in txn.records(KIND, f"{ixn.KIND}/") if r.key != k]
    if entry["Kind"] == ixn.KIND:
        intentions.append(entry)

    def lookup(kind: str, name: str) -> dict[str, Any] | None:
        if (kind, name) == (entry["Kind"], entry["Name"]):
            return entry
        return lookup_in(txn)(kind, name)

    if entry["Kind"] in (ixn.KIND, "service-defaults", "proxy-defaults"):
        problem = protocol_conflict(entry, lookup, intentions)
        if problem:
            raise EntryError(problem)
    if entry["Kind"] in (ingress.KIND, "service-defaults", "proxy-defaults", "service-router", "service-splitter"):
        _check_ingress_protocols(txn, lookup, entry)
    if entry["Kind"] in GRAPH_KINDS:
        _check_chains(txn, lookup, entry["Name"])
    txn.put(KIND, k, entry)
    return True


def _check_chains(txn: Txn, lookup: Lookup, name: str) -> None:
    """Consul compiles the discovery chains a write touches and refuses one that does not compile.
    Every chain with a router, splitter or resolver is checked (they are few): a write can break a
    chain other than its own (a resolver losing a subset another service's splitter names)."""
    names = {name} | {r.value["Name"] for kind in chain_rules.CHAIN_KINDS for r in txn.records(KIND, f"{kind}/")}
    problem = chain_rules.graph_problem(names, lookup, lambda service: protocol_of(service, lookup))
    if problem:
        raise EntryInvalid(problem)


def _check_ingress_protocols(txn: Txn, lookup: Lookup, written: dict[str, Any] | None,
                             deleted: tuple[str, str] | None = None) -> None:
    """Consul refuses a graph where an ingress listener's protocol differs from its services'."""
    gone = {(written["Kind"], written["Name"])} if written else {deleted}
    entries = [r.value for r in txn.records(KIND, f"{ingress.KIND}/") if (ingress.KIND, r.value["Name"]) not in gone]
    if written and written["Kind"] == ingress.KIND:
        entries.append(written)
    problem = ingress.protocol_conflict(
        entries, lambda name: protocol_of(name, lookup),
        lambda name: any(lookup(kind, name) for kind in ("service-router", "service-splitter")))
    if problem:
        raise EntryError(problem)


def delete_entry(txn: Txn, kind: str, name: str, cas: int | None) -> bool:
    k = key(kind, name)
    current = txn.get(KIND, k)
    if cas is not None and (current is None or current.modify_index != cas):
        return False
    if current is None:
        return True
    if kind in ("service-defaults", "proxy-defaults"):
        intentions = [r.value for r in txn.records(KIND, f"{ixn.KIND}/")]

        def lookup(k2: str, n2: str) -> dict[str, Any] | None:
            return None if (k2, n2) == (kind, name) else lookup_in(txn)(k2, n2)

        problem = protocol_conflict(None, lookup, intentions)
        if problem:
            raise EntryError(problem)
        _check_ingress_protocols(txn, lookup, None, (kind, name))
    if kind in GRAPH_KINDS:
        def gone(k2: str, n2: str) -> dict[str, Any] | None:
            return None if (k2, n2) == (kind, name) else lookup_in(txn)(k2, n2)
        _check_chains(txn, gone, name)
    txn.delete(KIND, k)
    return True
