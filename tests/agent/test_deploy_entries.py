"""deploy/entries.py against the real agent over HTTP: the entry writes keep what others wrote, a
source changed since the plan is left alone, and the per-project deploy lock. The service-resolver /
-splitter / -router entries (service.json `traffic`): written in a safe order with check-and-set,
updated, pruned in reverse order, an entry changed since the plan is left alone, someone else's is
never overwritten, a release's is held, and a release snapshot carries them."""
from __future__ import annotations

import copy
import json
import socket
import subprocess
import sys
from typing import Any

import pytest

from nomadmesh.deploy import intentions as di
from nomadmesh.deploy.consul_api import ConsulAPI
from nomadmesh.deploy.entries import DeployLocked, EntryWriter, apply_entries, deploy_lock, live_entry_changes
from nomadmesh.deploy.errors import DeployError
from nomadmesh.deploy.releases import entry_keys, read_entries
from nomadmesh.deploy.target import target_from_env
from nomadmesh.mesh.policy import MANAGED_KEY, PROJECT_KEY, RELEASE_KEY, Desired
from support.agents import RunningAgent

KIND = "service-intentions"


def desired(*pairs: tuple[str, str]) -> Desired:
    d = Desired("shop")
    for dest, src in pairs:
        d.sources[(dest, src)] = {"Name": src, "Type": "consul", "Action": "allow"}
    return d


def test_writes_keep_other_sources_and_meta_and_removal_keeps_them_too(consul) -> None:
    consul.config.set(KIND, "tax", {"Meta": {"owner": "terraform"},
                                    "Sources": [{"Name": "billing", "Action": "deny", "Description": "tf"}]})
    changes = live_entry_changes(consul, desired(("tax", "invoice"), ("invoice", "order")))
    assert [(c.name, c.source, c.action) for c in changes] == [("invoice", "order", "create"),
                                                               ("tax", "invoice", "create")]
    assert all(a.done for a in apply_entries(consul, changes, "shop"))
    entry = consul.config.get(KIND, "tax")
    assert {s["Name"]: s.get("Action") for s in entry["Sources"]} == {"billing": "deny", "invoice": "allow"}
    assert entry["Meta"] == {"owner": "terraform", "nomadmesh-source-invoice": "deploy:shop"}

    # Nothing declares invoice => tax any more: only our source goes, the entry and its Meta stay.
    changes = live_entry_changes(consul, desired(("invoice", "order")))
    assert [(c.name, c.source, c.action) for c in changes if c.action != "noop"] == [("tax", "invoice", "delete")]
    apply_entries(consul, changes, "shop")
    entry = consul.config.get(KIND, "tax")
    assert [s["Name"] for s in entry["Sources"]] == ["billing"] and entry["Meta"] == {"owner": "terraform"}


def test_a_source_changed_since_the_plan_is_left_alone(consul) -> None:
    apply_entries(consul, live_entry_changes(consul, desired(("tax", "invoice"))), "shop")
    plan = live_entry_changes(consul, Desired("shop", sources={("tax", "invoice"): {
        "Name": "invoice", "Type": "consul", "Action": "deny"}}))
    assert [(c.source, c.action) for c in plan] == [("invoice", "update")]
    # The operator takes the source over between this plan and its apply.
    di.set_intention(consul, "invoice", "tax", "allow", "the operator's words")
    (applied,) = apply_entries(consul, plan, "shop")
    assert not applied.done and "changed since the plan by intent:" in applied.note
    now = di.get_intention(consul, "invoice", "tax")
    assert (now.action, now.description) == ("allow", "the operator's words")


def test_one_deploy_per_project_and_the_lock_names_its_holder(consul) -> None:
    with deploy_lock(consul, "shop"):
        with pytest.raises(DeployLocked, match=r"another deploy of project 'shop' is running \(\S+@\S+ pid \d+"), \
                deploy_lock(consul, "shop"):
            pass
        with deploy_lock(consul, "other"):  # another project is not blocked
            pass
    assert consul.kv.get("nomadmesh/deploy-lock/shop")[1] is None


def test_a_lock_left_by_a_dead_process_here_is_taken_over_one_from_elsewhere_is_not(consul) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    key = "nomadmesh/deploy-lock/shop"
    consul.kv.put(key, json.dumps({"user": "ci", "host": socket.gethostname(), "pid": int(dead.stdout),
                                   "since": 0}))
    with deploy_lock(consul, "shop"):
        assert json.loads(consul.kv.get(key)[1]["Value"])["pid"] != int(dead.stdout)
    consul.kv.put(key, json.dumps({"user": "ci", "host": "another-machine", "pid": 1, "since": 0}))
    try:
        with pytest.raises(DeployLocked, match="ci@another-machine pid 1"), deploy_lock(consul, "shop"):
            pass
    finally:
        consul.kv.delete(key)


# --- discovery-chain entries ----------------------------------------------------------------------

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


def chain_desired(*entries: dict[str, Any], defaults: bool = True) -> Desired:
    d = Desired("shop", service_defaults={"dc-inv": DEFAULTS} if defaults else {})
    for e in entries:
        d.chain[(e["Kind"], e["Name"])] = copy.deepcopy(e)
    return d


def actions(changes: Any) -> list[tuple[str, str]]:
    return [(c.kind, c.action) for c in changes if c.action != "noop"]


def test_written_in_chain_order_then_noop_updated_and_pruned(consul: Any) -> None:
    changes = live_entry_changes(consul, chain_desired(ROUTER, SPLITTER, RESOLVER))
    assert actions(changes) == [("service-defaults", "create"), ("service-resolver", "create"),
                                ("service-splitter", "create"), ("service-router", "create")]
    # Applied in reverse, the agent would refuse the router (tcp, no subsets): apply orders them itself.
    assert all(a.done for a in apply_entries(consul, list(reversed(changes)), "shop"))
    assert consul.config.get("service-splitter", "dc-inv")["Splits"][1] == {"Weight": 10, "ServiceSubset": "v2"}
    assert actions(live_entry_changes(consul, chain_desired(ROUTER, SPLITTER, RESOLVER))) == []  # as Consul has them

    halves = {**SPLITTER, "Splits": [{"Weight": 50, "ServiceSubset": "v1"}, {"Weight": 50, "ServiceSubset": "v2"}]}
    changes = live_entry_changes(consul, chain_desired(ROUTER, halves, RESOLVER))
    assert actions(changes) == [("service-splitter", "update")]
    apply_entries(consul, changes, "shop")
    assert [s["Weight"] for s in consul.config.get("service-splitter", "dc-inv")["Splits"]] == [50, 50]

    # Nothing declares the traffic any more: router, splitter, resolver go (in that order), then the protocol.
    changes = live_entry_changes(consul, chain_desired(defaults=False))
    assert sorted(actions(changes)) == [("service-defaults", "delete"), ("service-resolver", "delete"),
                                        ("service-router", "delete"), ("service-splitter", "delete")]
    applied = apply_entries(consul, changes, "shop")
    assert [a.change.kind for a in applied] == ["service-router", "service-splitter", "service-resolver",
                                                "service-defaults"]
    assert all(a.done for a in applied)
    assert all(consul.config.get(kind, "dc-inv") is None for kind in ("service-router", "service-resolver"))


def test_changed_since_the_plan_or_someone_elses_is_left_alone(consul: Any) -> None:
    apply_entries(consul, live_entry_changes(consul, chain_desired(SPLITTER, RESOLVER)), "shop")
    halves = {**SPLITTER, "Splits": [{"Weight": 50, "ServiceSubset": "v1"}, {"Weight": 50, "ServiceSubset": "v2"}]}
    plan = live_entry_changes(consul, chain_desired(halves, RESOLVER))
    assert actions(plan) == [("service-splitter", "update")]
    # Someone writes the splitter between plan and apply: the CAS write is refused, the entry kept.
    theirs = {"Kind": "service-splitter", "Name": "dc-inv", "Splits": [{"Weight": 100, "ServiceSubset": "v1"}]}
    assert consul.config.set("service-splitter", "dc-inv", theirs) is True
    (applied,) = [a for a in apply_entries(consul, plan, "shop") if a.change.kind == "service-splitter"]
    assert not applied.done and "changed since the plan" in applied.note
    assert consul.config.get("service-splitter", "dc-inv")["Splits"] == [{"Weight": 100, "ServiceSubset": "v1"}]
    # Planned again, it is someone else's (no marks): shown as an override, never written.
    assert actions(live_entry_changes(consul, chain_desired(halves, RESOLVER))) == [("service-splitter", "override")]
    # A running release marks our splitter: deploy neither updates nor prunes it.
    held = {**SPLITTER, "Meta": {**META, RELEASE_KEY: "dc-inv-2"}}
    assert consul.config.set("service-splitter", "dc-inv", held) is True
    assert actions(live_entry_changes(consul, chain_desired(RESOLVER))) == [("service-splitter", "held")]
    consul.config.delete("service-splitter", "dc-inv")
    apply_entries(consul, live_entry_changes(consul, chain_desired(defaults=False)), "shop")
    assert consul.config.get("service-resolver", "dc-inv") is None


def test_a_release_snapshot_holds_the_chain_entries(consul: Any, module_agent: RunningAgent) -> None:
    apply_entries(consul, live_entry_changes(consul, chain_desired(SPLITTER, RESOLVER)), "shop")
    api = ConsulAPI(target_from_env({}, consul_addr=module_agent.consul_addr))
    try:
        entries = read_entries(api, entry_keys(["dc-inv"]))
    finally:
        api.close()
    assert entries["service-splitter/dc-inv"][0]["Splits"] == SPLITTER["Splits"]
    assert entries["service-resolver/dc-inv"][0]["DefaultSubset"] == "v1"
    assert entries["service-router/dc-inv"] == (None, 0)
    apply_entries(consul, live_entry_changes(consul, chain_desired(defaults=False)), "shop")


def test_a_split_to_a_subset_with_no_healthy_instance_is_refused_and_the_live_split_kept(consul: Any) -> None:
    """Consul 10857: deploy refuses, before writing anything, a splitter sending weight to an empty subset."""
    name = "dc-hv"
    resolver = {**RESOLVER, "Name": name}
    split = {**SPLITTER, "Name": name}
    only_v1 = {**split, "Splits": [{"Weight": 100, "ServiceSubset": "v1"}]}
    consul.agent.service.register(name, service_id=f"{name}-1", port=9101, meta={"version": "1"})
    writer = EntryWriter(consul, "shop")

    def wanted(*entries: dict[str, Any]) -> Desired:
        d = chain_desired(*entries, defaults=False)
        d.service_defaults[name] = {**DEFAULTS, "Name": name}
        return d

    try:
        writer.write(live_entry_changes(consul, wanted(only_v1, resolver)), NullProgress())
        assert consul.config.get("service-splitter", name)["Splits"] == [{"Weight": 100, "ServiceSubset": "v1"}]
        plan = live_entry_changes(consul, wanted(split, resolver))
        with pytest.raises(DeployError, match=r"dc-hv: traffic.splits: 10% to subset 'v2' of dc-hv, which has "
                                              r"no healthy instance .*nothing written"):
            writer.write(plan, NullProgress())
        assert consul.config.get("service-splitter", name)["Splits"] == [{"Weight": 100, "ServiceSubset": "v1"}]
        # Once a v2 instance is healthy, the same plan goes through.
        consul.agent.service.register(name, service_id=f"{name}-2", port=9102, meta={"version": "2"})
        writer.write(plan, NullProgress())
        assert consul.config.get("service-splitter", name)["Splits"][1] == {"Weight": 10, "ServiceSubset": "v2"}
    finally:
        for sid in (f"{name}-1", f"{name}-2"):
            consul.agent.service.deregister(sid)
        for kind in ("service-splitter", "service-resolver", "service-defaults"):
            consul.config.delete(kind, name)


class NullProgress:
    def note(self, text: str) -> None:
        pass
