"""Consul 10857: a service-splitter that sends weight to a subset with no healthy instance makes
Envoy answer 503 for that share. Before deploy writes a splitter, every weighted subset is looked
up on the target (`/v1/health/service/<svc>?passing&filter=<the subset's filter>`); a subset with
no passing instance while the service has some stops the deploy before anything is written, so the
live split (or none) keeps traffic where it works. A service with no instance at all (a first
deploy) has nothing that works to keep, and is let through.

    empty_subsets(changes, live_resolvers, passing) -> [message]   pure
    check_splits(consul, changes)                   -> raises DeployError
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import consul as consul_lib

from nomadmesh.deploy.consul_api import consul_errors
from nomadmesh.deploy.errors import DeployError
from nomadmesh.mesh.chain_rules import RESOLVER, SPLITTER
from nomadmesh.mesh.entry_plan import EntryChange

Entry = dict[str, Any]
Passing = Callable[[str, str | None], int]  # (service, filter or None) -> passing instances


def empty_subsets(changes: Sequence[EntryChange], live_resolver: Callable[[str], Entry | None],
                  passing: Passing) -> list[str]:
    """A message per weighted subset of a splitter being written that has no passing instance."""
    planned = {c.name: c.after for c in changes if c.kind == RESOLVER and c.action in ("create", "update")}
    problems = []
    for change in changes:
        if change.kind != SPLITTER or change.action not in ("create", "update") or not change.after:
            continue
        for split in change.after.get("Splits") or []:
            subset = split.get("ServiceSubset")
            if not subset or not float(split.get("Weight") or 0):
                continue
            service = split.get("Service") or change.name
            resolver = planned[service] if service in planned else live_resolver(service)
            spec = ((resolver or {}).get("Subsets") or {}).get(subset) or {}
            if passing(service, spec.get("Filter") or None) == 0 and passing(service, None) > 0:
                problems.append(f"{change.name}: traffic.splits: {split.get('Weight')}% to subset {subset!r} of "
                                f"{service}, which has no healthy instance (filter {spec.get('Filter')!r}); "
                                "nothing written, traffic stays on the live split (Consul 10857): "
                                "deploy the subset's instances first, then the split")
    return problems


def check_splits(consul: consul_lib.Consul, changes: Sequence[EntryChange]) -> None:
    """Raise DeployError (nothing written yet) when a splitter would send traffic to an empty subset."""
    def passing(service: str, filter_expr: str | None) -> int:
        with consul_errors(consul):
            _, nodes = consul.health.service(service, passing=True, filter_expr=filter_expr)
        return len(nodes or [])

    def live_resolver(service: str) -> Entry | None:
        with consul_errors(consul):
            try:
                return consul.config.get(RESOLVER, service)
            except consul_lib.NotFound:  # no resolver: the subset has no filter to find it by
                return None

    problems = empty_subsets(changes, live_resolver, passing)
    if problems:
        raise DeployError("; ".join(problems))
