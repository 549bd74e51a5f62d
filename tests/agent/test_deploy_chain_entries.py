"""Deploy's service-resolver / -splitter / -router entries (service.json `traffic`) against the real
agent over HTTP: written in chain order with check-and-set, updated, pruned in reverse order, an
entry changed since the plan is left alone, someone else's is never overwritten, a release's is
held, and a release snapshot carries them so a rollback can restore them."""
from __future__ import annotations

import copy
from typing import Any

from nomadmesh.deploy.consul_api import ConsulAPI
from nomadmesh.deploy.entries import apply_entries, live_entry_changes
from nomadmesh.deploy.releases import entry_keys, read_entries
from nomadmesh.deploy.target import target_from_env
from nomadmesh.mesh.policy import MANAGED_KEY, PROJECT_KEY, RELEASE_KEY, Desired
from support.agents import RunningAgent

META = {MANAGED_KEY: "true", PROJECT_KEY: "shop"}
RESOLVER = {"Kind": "service-resolver", "Name": "dc-inv", "DefaultSubset": "v1", "Meta": META,
            "Subsets": {"v1": {"Filter": 'Service.Meta.version == "1"'},
                        "v2": {"Filter": 'Service.Meta.version == "2"'}}}
SPLITTER = {"Kind": "service-splitter", "Name": "dc-inv", "Meta": META,
            "Splits": [{"Weight": 90, "ServiceSubset": "v1"}, {"Weight": 10, "ServiceSubset": "v2"}]}
ROUTER = {"Kind": "service-router", "Name": "dc-inv", "Meta": META, "Routes": [
    {"Match": {"HTTP": {"PathPrefix": "/admin"}},
     "Destination": {"ServiceSubset": "v2", "PrefixRewrite": "/", "RequestTimeout": "2s", "NumRetries": 2}}]}
DEFAULTS = {"Kind": "service-defaults", "Name": "dc-inv", "Protocol": "http", "Meta": META}


def desired(*entries: dict[str, Any], defaults: bool = True) -> Desired:
    d = Desired("shop", service_defaults={"dc-inv": DEFAULTS} if defaults else {})
    for e in entries:
        d.chain[(e["Kind"], e["Name"])] = copy.deepcopy(e)
    return d


def actions(changes: Any) -> list[tuple[str, str]]:
    return [(c.kind, c.action) for c in changes if c.action != "noop"]


def test_written_in_chain_order_then_noop_updated_and_pruned(consul: Any) -> None:
    changes = live_entry_changes(consul, desired(ROUTER, SPLITTER, RESOLVER))
    assert actions(changes) == [("service-defaults", "create"), ("service-resolver", "create"),
                                ("service-splitter", "create"), ("service-router", "create")]
    # Applied in reverse, the agent would refuse the router (tcp, no subsets): apply orders them itself.
    assert all(a.done for a in apply_entries(consul, list(reversed(changes)), "shop"))
    assert consul.config.get("service-splitter", "dc-inv")["Splits"][1] == {"Weight": 10, "ServiceSubset": "v2"}
    assert actions(live_entry_changes(consul, desired(ROUTER, SPLITTER, RESOLVER))) == []  # as Consul returns them

    halves = {**SPLITTER, "Splits": [{"Weight": 50, "ServiceSubset": "v1"}, {"Weight": 50, "ServiceSubset": "v2"}]}
    changes = live_entry_changes(consul, desired(ROUTER, halves, RESOLVER))
    assert actions(changes) == [("service-splitter", "update")]
    apply_entries(consul, changes, "shop")
    assert [s["Weight"] for s in consul.config.get("service-splitter", "dc-inv")["Splits"]] == [50, 50]

    # Nothing declares the traffic any more: router, splitter, resolver go (in that order), then the protocol.
    changes = live_entry_changes(consul, desired(defaults=False))
    assert sorted(actions(changes)) == [("service-defaults", "delete"), ("service-resolver", "delete"),
                                        ("service-router", "delete"), ("service-splitter", "delete")]
    applied = apply_entries(consul, changes, "shop")
    assert [a.change.kind for a in applied] == ["service-router", "service-splitter", "service-resolver",
                                                "service-defaults"]
    assert all(a.done for a in applied)
    assert all(consul.config.get(kind, "dc-inv") is None for kind in ("service-router", "service-resolver"))


def test_changed_since_the_plan_or_someone_elses_is_left_alone(consul: Any) -> None:
    apply_entries(consul, live_entry_changes(consul, desired(SPLITTER, RESOLVER)), "shop")
    halves = {**SPLITTER, "Splits": [{"Weight": 50, "ServiceSubset": "v1"}, {"Weight": 50, "ServiceSubset": "v2"}]}
    plan = live_entry_changes(consul, desired(halves, RESOLVER))
    assert actions(plan) == [("service-splitter", "update")]
    # Someone writes the splitter between plan and apply: the CAS write is refused, the entry kept.
    theirs = {"Kind": "service-splitter", "Name": "dc-inv", "Splits": [{"Weight": 100, "ServiceSubset": "v1"}]}
    assert consul.config.set("service-splitter", "dc-inv", theirs) is True
    (applied,) = [a for a in apply_entries(consul, plan, "shop") if a.change.kind == "service-splitter"]
    assert not applied.done and "changed since the plan" in applied.note
    assert consul.config.get("service-splitter", "dc-inv")["Splits"] == [{"Weight": 100, "ServiceSubset": "v1"}]
    # Planned again, it is someone else's (no marks): shown as an override, never written.
    assert actions(live_entry_changes(consul, desired(halves, RESOLVER))) == [("service-splitter", "override")]
    # A running release marks our splitter: deploy neither updates nor prunes it.
    held = {**SPLITTER, "Meta": {**META, RELEASE_KEY: "dc-inv-2"}}
    assert consul.config.set("service-splitter", "dc-inv", held) is True
    assert actions(live_entry_changes(consul, desired(RESOLVER))) == [("service-splitter", "held")]
    consul.config.delete("service-splitter", "dc-inv")
    apply_entries(consul, live_entry_changes(consul, desired(defaults=False)), "shop")
    assert consul.config.get("service-resolver", "dc-inv") is None


def test_a_release_snapshot_holds_the_chain_entries(consul: Any, module_agent: RunningAgent) -> None:
    apply_entries(consul, live_entry_changes(consul, desired(SPLITTER, RESOLVER)), "shop")
    api = ConsulAPI(target_from_env({}, consul_addr=module_agent.consul_addr))
    try:
        entries = read_entries(api, entry_keys(["dc-inv"]))
    finally:
        api.close()
    assert entries["service-splitter/dc-inv"][0]["Splits"] == SPLITTER["Splits"]
    assert entries["service-resolver/dc-inv"][0]["DefaultSubset"] == "v1"
    assert entries["service-router/dc-inv"] == (None, 0)
    apply_entries(consul, live_entry_changes(consul, desired(defaults=False)), "shop")
