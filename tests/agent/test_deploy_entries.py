"""deploy/entries.py against the real agent over HTTP: the entry writes keep what others wrote, a
source changed since the plan is left alone, and the per-project deploy lock."""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from nomadmesh.deploy import intentions as di
from nomadmesh.deploy.entries import DeployLocked, apply_entries, deploy_lock, live_entry_changes
from nomadmesh.mesh.policy import Desired

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
