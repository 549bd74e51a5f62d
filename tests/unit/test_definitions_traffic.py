"""service.json `traffic` (issue 15 item 3): subsets, splits (per environment) and HTTP routes are
read, refused with `file: field: message` where Consul would refuse the entries, turned into
Consul's service-resolver / -splitter / -router JSON, and planned like the other entries:
created, noop against what Consul returns, updated, pruned, overridden, held by a release."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from nomadmesh.definitions import load_spec
from nomadmesh.definitions.model import Project
from nomadmesh.mesh.entry_plan import format_entries, plan_entries
from nomadmesh.mesh.policy import MANAGED_KEY, PROJECT_KEY, RELEASE_KEY, desired_policy, policy_problems
from nomadmesh.render.ownership import definition_hash
from support.spec_builders import definition, problems, write_services

HTTP = {"protocol": "http"}
V1V2 = {"v1": {"filter": 'Service.Meta.version == "1"'}, "v2": {"filter": 'Service.Meta.version == "2"'}}


def service(name: str, port: int, traffic: dict[str, Any] | None = None, protocol: dict[str, str] | None = HTTP,
            upstreams: dict[str, int] | None = None) -> dict[str, Any]:
    doc = definition(name, port, upstreams)
    if protocol is not None:
        doc["service"]["connect"]["sidecar_service"]["proxy"]["config"] = protocol
    if traffic is not None:
        doc["traffic"] = traffic
    return doc


def mesh(invoice_traffic: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return {"order": service("order", 5000, upstreams={"invoice": 6001}, protocol=None),
            "invoice": service("invoice", 5001, invoice_traffic, **kwargs),
            "audit": service("audit", 5002, {"subsets": {"blue": {"filter": "Service.Tags contains blue"}}})}


CANARY = {"subsets": V1V2, "default_subset": "v1",
          "splits": [{"weight": 90, "subset": "v1"}, {"weight": 10, "subset": "v2"}],
          "routes": [{"match": {"path_prefix": "/admin", "methods": ["get"],
                                "header": [{"name": "x-debug", "exact": "1"}]},
                      "destination": {"subset": "v2", "prefix_rewrite": "/", "request_timeout": "2000ms",
                                      "num_retries": 2}},
                     {"match": {"path_exact": "/audit"}, "destination": {"service": "audit", "subset": "blue"}}]}


def test_traffic_becomes_consuls_three_entries(tmp_path: Path) -> None:
    (tmp_path / "nomadmesh.json").write_text(json.dumps({"name": "shop"}))
    spec = load_spec(write_services(tmp_path, mesh(CANARY)))
    desired = desired_policy(spec)
    meta = {MANAGED_KEY: "true", PROJECT_KEY: "shop"}
    assert desired.chain[("service-resolver", "invoice")] == {
        "Kind": "service-resolver", "Name": "invoice", "DefaultSubset": "v1", "Meta": meta,
        "Subsets": {"v1": {"Filter": 'Service.Meta.version == "1"'}, "v2": {"Filter": 'Service.Meta.version == "2"'}}}
    assert desired.chain[("service-splitter", "invoice")]["Splits"] == [
        {"Weight": 90, "ServiceSubset": "v1"}, {"Weight": 10, "ServiceSubset": "v2"}]
    assert desired.chain[("service-router", "invoice")]["Routes"] == [
        {"Match": {"HTTP": {"PathPrefix": "/admin", "Methods": ["GET"], "Header": [{"Name": "x-debug", "Exact": "1"}]}},
         "Destination": {"ServiceSubset": "v2", "PrefixRewrite": "/", "RequestTimeout": "2s", "NumRetries": 2}},
        {"Match": {"HTTP": {"PathExact": "/audit"}}, "Destination": {"Service": "audit", "ServiceSubset": "blue"}}]
    assert ("service-splitter", "audit") not in desired.chain and ("service-resolver", "audit") in desired.chain
    assert policy_problems(spec) == []


@pytest.mark.parametrize("traffic, kwargs, field, message", [
    pytest.param({**CANARY, "splits": [{"weight": 90, "subset": "v1"}, {"weight": 9.5, "subset": "v2"}]}, {},
                 "traffic.splits", "the weights add up to 99.5, they must add up to 100", id="weights"),
    pytest.param({"subsets": V1V2, "splits": [{"weight": 100, "subset": "v3"}]}, {},
                 "traffic.splits[0].subset", "'v3' is not a subset declared in traffic.subsets (declared: v1, v2)",
                 id="split-subset"),
    pytest.param({"subsets": V1V2, "default_subset": "v9"}, {},
                 "traffic.default_subset", "'v9' is not a subset declared in traffic.subsets (declared: v1, v2)",
                 id="default-subset"),
    pytest.param({"routes": [{"match": {"path_prefix": "/a"}, "destination": {"subset": "v2"}}]}, {},
                 "traffic.routes[0].destination.subset",
                 "'v2' is not a subset declared in traffic.subsets (declared: none)", id="route-subset"),
    pytest.param(CANARY, {"protocol": None}, "traffic.splits",
                 "splits need an HTTP protocol, but 'invoice' is tcp; declare it in "
                 'service.connect.sidecar_service.proxy.config: {"protocol": "http"} (or http2, grpc)', id="tcp"),
    pytest.param({"splits": [{"weight": 50.005}, {"weight": 49.995, "service": "audit"}]}, {},
                 "traffic.splits[0].weight", "must be in steps of 0.01 (Consul keeps no finer share), got 50.005",
                 id="granularity"),
    pytest.param({"splits": [{"weight": "90"}]}, {}, "traffic.splits[0].weight",
                 "must be a number from 0 to 100, got string '90'", id="weight-type"),
    pytest.param({"subsets": {"v1": {"filtre": "x"}}}, {}, "traffic.subsets.v1.filtre",
                 "unknown key; did you mean 'filter'?", id="unknown-key"),
    pytest.param({"routes": [{"match": {"path_prefix": "/a"}, "destination": {"service": "nowhere"}}]}, {},
                 "traffic.routes[0].destination", "'nowhere' is not a service defined here or in external_services",
                 id="route-service"),
    pytest.param({"splits": [{"weight": 50}, {"weight": 50, "service": "audit", "subset": "green"}]}, {},
                 "traffic.splits", "'green' is not a subset 'audit' declares in its traffic.subsets (",
                 id="other-subset"),
    pytest.param({"routes": [{"match": {"path_prefix": "/a"}, "destination": {"service": "order"}}]}, {},
                 "traffic.routes[0].destination", "'order' is tcp but 'invoice' is http: Consul refuses a discovery "
                 "chain whose services have different protocols", id="other-protocol"),
])
def test_traffic_problems_name_the_field(tmp_path: Path, traffic: dict[str, Any], kwargs: dict[str, Any],
                                         field: str, message: str) -> None:
    found = problems(tmp_path, mesh(traffic, **kwargs))
    assert any(folder == "invoice" and f == field and message in m for folder, f, m in found), found


def test_consuls_own_rules_are_reported_with_its_text(tmp_path: Path) -> None:
    traffic = {"subsets": {"V1": {"filter": "x"}},
               "routes": [{"match": {"path_exact": "/a", "path_prefix": "/b"}, "destination": {}}]}
    spec = load_spec(write_services(tmp_path, mesh(traffic)))
    found = {(p.field, p.message) for p in policy_problems(spec)}
    assert ("traffic.subsets", 'Consul would refuse it: Subset "V1" is invalid: must be 63 characters or fewer, begin '
            "or end with lower case alphanumeric characters, and contain lower case alphanumeric characters or '-' "
            "in between") in found
    assert ("traffic.routes[0]", "Consul would refuse it: Route[0] should only contain at most one of PathExact, "
            "PathPrefix, or PathRegex") in found


def test_splits_differ_per_environment(tmp_path: Path) -> None:
    write_services(tmp_path, mesh(CANARY))
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "prod.json").write_text(json.dumps({"services": {"invoice": {"traffic": {
        "splits": [{"weight": 99.5, "subset": "v1"}, {"weight": 0.5, "subset": "v2"}]}}}}))
    prod = load_spec(tmp_path / "services", env="prod")
    assert [(s.weight, s.subset) for s in prod.service("invoice").traffic.splits] == [(99.5, "v1"), (0.5, "v2")]
    assert [s.weight for s in load_spec(tmp_path / "services").service("invoice").traffic.splits] == [90, 10]


# --- the plan -------------------------------------------------------------------------------------


def as_consul_returns(entry: dict[str, Any], index: int = 7) -> dict[str, Any]:
    return {**copy.deepcopy(entry), "CreateIndex": index, "ModifyIndex": index}


def desired_for(tmp_path: Path, traffic: dict[str, Any], name: str = "shop") -> Any:
    (tmp_path / "nomadmesh.json").write_text(json.dumps({"name": name}))
    return desired_policy(load_spec(write_services(tmp_path, mesh(traffic))))


def chain_changes(changes: Any) -> dict[tuple[str, str], Any]:
    return {(c.kind, c.name): c for c in changes if c.kind.startswith("service-") and c.kind != "service-defaults"
            and c.kind != "service-intentions"}


def test_plan_creates_then_noops_then_updates_and_prunes(tmp_path: Path) -> None:
    desired = desired_for(tmp_path, CANARY)
    created = chain_changes(plan_entries(desired, {}, {}))
    assert {k: c.action for k, c in created.items()} == {
        ("service-resolver", "audit"): "create", ("service-resolver", "invoice"): "create",
        ("service-splitter", "invoice"): "create", ("service-router", "invoice"): "create"}
    live = {k: as_consul_returns(e) for k, e in desired.chain.items()}
    assert {c.action for c in chain_changes(plan_entries(desired, {}, {}, live_chain=live)).values()} == {"noop"}
    halves = [{"weight": 50, "subset": "v1"}, {"weight": 50, "subset": "v2"}]
    shifted = desired_for(tmp_path, {**CANARY, "splits": halves, "routes": []})
    changes = chain_changes(plan_entries(shifted, {}, {}, live_chain=live))
    assert changes[("service-splitter", "invoice")].action == "update"
    assert changes[("service-router", "invoice")].action == "delete"
    lines = format_entries(changes.values())
    assert "~ service-splitter invoice: change v1 90%, v2 10% -> v1 50%, v2 50% (service.json traffic changed)" in lines
    assert any(line.startswith("- service-router invoice: remove GET /admin -> v2; /audit -> audit/blue")
               for line in lines)


def test_someone_elses_entry_is_not_overwritten_and_a_release_holds_ours(tmp_path: Path) -> None:
    desired = desired_for(tmp_path, CANARY)
    theirs = {k: {**as_consul_returns(e), "Meta": {}} for k, e in desired.chain.items()}
    theirs[("service-splitter", "invoice")]["Splits"] = [{"Weight": 100, "ServiceSubset": "v1"}]
    changes = chain_changes(plan_entries(desired, {}, {}, live_chain=theirs))
    assert changes[("service-splitter", "invoice")].action == "override"
    assert changes[("service-resolver", "invoice")].action == "noop"  # same content: nothing to do
    assert chain_changes(plan_entries(desired, {}, {}, True, theirs))[("service-splitter", "invoice")].action == \
        "update"
    held = {k: as_consul_returns(e) for k, e in desired.chain.items()}
    release_split = {"Kind": "service-splitter", "Name": "invoice", "Splits": [{"Weight": 75, "ServiceSubset": "v1"},
                     {"Weight": 25, "ServiceSubset": "v2"}], "Meta": {RELEASE_KEY: "invoice-3"}}
    held[("service-splitter", "invoice")] = as_consul_returns(release_split)
    gone = desired_for(tmp_path, {"subsets": V1V2})  # the definitions drop the split: no prune while it is held
    changes = chain_changes(plan_entries(gone, {}, {}, live_chain=held))
    assert changes[("service-splitter", "invoice")].action == "held"
    assert changes[("service-router", "invoice")].action == "delete"
    assert "= service-splitter invoice: held by a release: v1 75%, v2 25% (release invoice-3 is running; left " \
           "alone until it ends)" in format_entries(changes.values())


def test_traffic_is_no_part_of_the_jobs_hash(tmp_path: Path) -> None:
    """A split or route change is an entry change: the jobs must plan as unchanged (no restart)."""
    plain = load_spec(write_services(tmp_path / "a", mesh({}))).service("invoice")
    shifted = load_spec(write_services(tmp_path / "b", mesh(CANARY))).service("invoice")
    assert definition_hash(plain, Project()) == definition_hash(shifted, Project())
