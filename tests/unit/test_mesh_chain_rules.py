"""Consul's discovery-chain rules (mesh/chain_rules.py: the cases of Consul's compile tests), and the
order deploy and rollback write whole config entries in (mesh/chain_order.py): Consul must never
see a chain that does not compile, so a resolver losing a subset waits for the splitter that still
names it, even until after the jobs when the splitter is being removed."""
from __future__ import annotations

from typing import Any

from nomadmesh.deploy.releases import Release
from nomadmesh.deploy.rollback import ordered_steps, plan_rollback
from nomadmesh.mesh.chain_order import entry_phases
from nomadmesh.mesh.chain_rules import chain_problem
from nomadmesh.mesh.entry_plan import EntryChange


def resolver(*subsets: str) -> dict[str, Any]:
    return {"Kind": "service-resolver", "Name": "inv", "Subsets": {s: {"Filter": f"Service.Meta.v == {s}"}
                                                                   for s in subsets}}


def splitter(**weights: int) -> dict[str, Any]:
    return {"Kind": "service-splitter", "Name": "inv",
            "Splits": [{"Weight": w, "ServiceSubset": s} for s, w in weights.items()]}


def change(action: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> EntryChange:
    entry = after or before or {}
    return EntryChange(entry["Kind"], "inv", None, action, before, after)  # type: ignore[arg-type]


def labels(changes: list[EntryChange]) -> list[str]:
    return [f"{c.action} {c.kind}" for c in changes]


def test_a_new_subset_comes_before_the_split_that_names_it() -> None:
    before, after = entry_phases([change("update", splitter(v1=100), splitter(v1=90, v2=10)),
                                  change("update", resolver("v1"), resolver("v1", "v2"))])
    assert (labels(before), after) == (["update service-resolver", "update service-splitter"], [])


def test_a_subset_goes_only_once_no_split_names_it() -> None:
    # The canary became stable: the split moves to v2 first, then v1 leaves the resolver.
    before, after = entry_phases([change("update", splitter(v1=50, v2=50), splitter(v2=100)),
                                  change("update", resolver("v1", "v2"), resolver("v2"))])
    assert (labels(before), after) == (["update service-splitter", "update service-resolver"], [])
    # The split is dropped altogether: it is deleted after the jobs, and the resolver waits for that.
    before, after = entry_phases([change("delete", splitter(v1=50, v2=50), None),
                                  change("update", resolver("v1", "v2"), resolver("v3"))])
    assert (labels(before), labels(after)) == ([], ["delete service-splitter", "update service-resolver"])


def test_rollback_restores_a_resolver_after_the_split_that_outgrew_it() -> None:
    target = Release(1, "t", "w", "deploy", {}, {"service-resolver/inv": resolver("v1"),
                                                 "service-splitter/inv": splitter(v1=100)})
    live = {"service-resolver/inv": (resolver("v1", "all"), 4), "service-splitter/inv": (splitter(v1=50, all=50), 5)}
    plan = plan_rollback(target, {}, {}, live)
    assert [step.key for _, step in ordered_steps(plan)] == ["service-splitter/inv", "service-resolver/inv"]


def test_a_service_turning_tcp_waits_until_its_router_is_gone() -> None:
    router = {"Kind": "service-router", "Name": "inv", "Routes": [{"Match": {"HTTP": {"PathPrefix": "/a"}}}]}
    http, tcp = ({"Kind": "service-defaults", "Name": "inv", "Protocol": p} for p in ("http", "tcp"))
    before, after = entry_phases([change("update", http, tcp), change("delete", router, None)])
    assert (labels(before), labels(after)) == ([], ["delete service-router", "update service-defaults"])


def problem(service: str, protocols: dict[str, str], *entries: dict[str, Any]) -> str | None:
    stored = {(e["Kind"], e["Name"]): e for e in entries}
    return chain_problem(service, lambda kind, name: stored.get((kind, name)),
                         lambda name: protocols.get(name, "tcp"))


def test_redirects_and_failovers_must_keep_the_chains_protocol() -> None:
    inconsistent = 'discovery chain "main" uses inconsistent protocols; service "other" has "tcp" which is not "grpc"'
    failover = {"Kind": "service-resolver", "Name": "main", "Failover": {"*": {"Service": "other"}}}
    redirect = {"Kind": "service-resolver", "Name": "main", "Redirect": {"Service": "other"}}
    assert problem("main", {"main": "grpc"}, failover) == inconsistent
    assert problem("main", {"main": "grpc"}, redirect) == inconsistent
    assert problem("main", {"main": "grpc", "other": "grpc"}, redirect) is None


def test_a_redirect_or_nested_split_to_a_missing_subset() -> None:
    other = {"Kind": "service-resolver", "Name": "other", "ConnectTimeout": "33s"}
    redirect = {"Kind": "service-resolver", "Name": "main", "Redirect": {"Service": "other", "ServiceSubset": "v1"}}
    assert problem("main", {}, other, redirect) == 'service "other" does not have a subset named "v1"'
    http = {"main": "http", "other": "http"}
    outer = {"Kind": "service-splitter", "Name": "main", "Splits": [{"Weight": 50}, {"Weight": 50, "Service": "other"}]}
    inner = {"Kind": "service-splitter", "Name": "other", "Splits": [{"Weight": 100, "ServiceSubset": "v9"}]}
    assert problem("main", http, outer) is None
    assert problem("main", http, outer, inner) == 'service "other" does not have a subset named "v9"'
    assert problem("main", {"other": "http"}, outer) == (
        'discovery chain "main" uses inconsistent protocols; service "other" has "http" which is not "tcp"')
