"""A service's `traffic` → the service-resolver / service-splitter / service-router entries deploy
writes, and the checks Consul would make of them. Pure.

    chain_entries(service, meta) -> {(kind, name): entry}   Consul's JSON, as Consul stores it
    traffic_problems(service)    -> [Problem]               Consul's own texts, per field
    same_entry(live, wanted)     -> bool                    ignoring Meta and what Consul sets

Entries are built in the form Consul returns them (weights rounded to 0.01 and printed as Go
prints a float32, durations as Go strings, methods in upper case), so an unchanged definition
plans as a noop against what Consul holds.
"""
from __future__ import annotations

import json
from typing import Any

from nomadmesh.definitions.model import Service
from nomadmesh.errors import Problem
from nomadmesh.mesh.chain_rules import RESOLVER, ROUTER, SPLITTER
from nomadmesh.mesh.entry_types import Undecodable
from nomadmesh.mesh.resolver_rules import InvalidResolver, normalize as normalize_resolver
from nomadmesh.mesh.router_rules import InvalidRouter, validate as validate_router
from nomadmesh.mesh.splitter_rules import InvalidSplitter, normal_weight, normalize as normalize_splitter

Entry = dict[str, Any]
SERVER_FIELDS = ("CreateIndex", "ModifyIndex", "Hash", "Meta")  # not what the entry decides


def chain_entries(service: Service, meta: dict[str, str]) -> dict[tuple[str, str], Entry]:
    """The entries `service.traffic` declares (none for what it leaves out), each with `meta`."""
    traffic, name = service.traffic, service.name
    out: dict[tuple[str, str], Entry] = {}
    if traffic.subsets or traffic.default_subset:
        resolver: Entry = {"Kind": RESOLVER, "Name": name}
        if traffic.default_subset:
            resolver["DefaultSubset"] = traffic.default_subset
        resolver["Subsets"] = {s.name: {"Filter": s.filter, **({"OnlyPassing": True} if s.only_passing else {})}
                               for s in traffic.subsets}
        out[(RESOLVER, name)] = {**resolver, "Meta": dict(meta)}
    if traffic.splits:
        splits = []
        for split in traffic.splits:
            one: Entry = {"Weight": normal_weight(split.weight)}
            if split.service:
                one["Service"] = split.service
            if split.subset:
                one["ServiceSubset"] = split.subset
            splits.append(one)
        out[(SPLITTER, name)] = {"Kind": SPLITTER, "Name": name, "Splits": splits, "Meta": dict(meta)}
    if traffic.routes:
        out[(ROUTER, name)] = {"Kind": ROUTER, "Name": name, "Routes": [json.loads(r.consul) for r in traffic.routes],
                               "Meta": dict(meta)}
    return out


def traffic_problems(service: Service) -> list[Problem]:
    """What Consul would refuse in the entries `service.traffic` makes, with its text, at the field."""
    problems = []
    for (kind, _), entry in chain_entries(service, {}).items():
        try:
            if kind == RESOLVER:
                normalize_resolver(entry)  # the filter grammar is checked by Consul (or the agent) at deploy
            elif kind == SPLITTER:
                normalize_splitter(entry)
            else:
                validate_router(entry)
        except (InvalidResolver, InvalidSplitter, Undecodable) as e:
            field = "traffic.subsets" if kind == RESOLVER else "traffic.splits"
            problems.append(Problem(service.source, field, f"Consul would refuse it: {e}"))
        except InvalidRouter as e:
            problems.append(Problem(service.source, _route_path(service, str(e)), f"Consul would refuse it: {e}"))
    return problems


def _route_path(service: Service, message: str) -> str:
    """The service.json path of the route a router message names (`Route[1] ...`)."""
    for i, route in enumerate(service.traffic.routes):
        if message.startswith(f"Route[{i}] ") or message.startswith(f"Routes[{i}]"):
            return route.where
    return "traffic.routes"


def _canon(value: Any) -> Any:
    """`value` without empty fields (Consul omits them) and with Go's numbers (90.0 is 90)."""
    if isinstance(value, dict):
        return {k: _canon(v) for k, v in sorted(value.items()) if v not in (None, "", [], {}, False)}
    if isinstance(value, list):
        return [_canon(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def same_entry(live: Entry | None, wanted: Entry | None) -> bool:
    """Whether two entries decide the same (Meta, indexes and empty fields aside)."""
    if live is None or wanted is None:
        return live is wanted
    strip = {k: v for k, v in live.items() if k not in SERVER_FIELDS}
    return _canon(strip) == _canon({k: v for k, v in wanted.items() if k not in SERVER_FIELDS})
