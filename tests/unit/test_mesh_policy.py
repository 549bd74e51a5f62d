"""The project's mesh policy (mesh/policy.py) and its diff against live entries (mesh/entry_plan.py):
derived allows, nomadmesh.json rules, protocols as service-defaults, ownership marks, overrides."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nomadmesh.definitions import load_spec
from nomadmesh.definitions.model import Spec
from nomadmesh.deploy.jobs import render_jobs
from nomadmesh.errors import SpecError
from nomadmesh.jobspec.parse import parse_hcl
from nomadmesh.mesh.entry_plan import format_entries, plan_entries
from nomadmesh.mesh.policy import Desired, desired_policy, mark, owner_of, unmark
from support.spec_builders import definition, problems, write_services

SEED = {"order": definition("order", 5000, {"invoice": 6001}),
        "invoice": definition("invoice", 5001, {"tax": 6002, "payments": 6003}),
        "tax": definition("tax", 5002)}


def load(root: Path, docs: dict[str, Any] = SEED, project: dict[str, Any] | None = None, **kwargs: Any) -> Spec:
    services = write_services(root, docs)
    if project is not None:
        (root / "nomadmesh.json").write_text(json.dumps(project))
    return load_spec(services, **kwargs)


def with_protocol(doc: dict[str, Any], protocol: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    doc["service"]["connect"]["sidecar_service"]["proxy"]["config"] = {"protocol": protocol}
    return doc


# --- desired state ------------------------------------------------------------------------------


def test_one_allow_per_declared_upstream_external_included_owned_by_the_project(tmp_path: Path) -> None:
    spec = load(tmp_path / "shop", project={"name": "shop", "external_services": ["payments"]})
    desired = desired_policy(spec)
    assert desired.project == "shop"
    assert sorted(desired.sources) == [("invoice", "order"), ("payments", "invoice"), ("tax", "invoice")]
    assert desired.sources[("tax", "invoice")] == {
        "Name": "invoice", "Type": "consul", "Action": "allow",
        "Description": "nomadmesh: invoice declares tax as an upstream"}
    assert desired.reasons[("payments", "invoice")] == "upstream of invoice"
    assert desired.service_defaults == {}


def test_rules_add_and_replace_derived_allows_and_derivation_can_be_turned_off(tmp_path: Path) -> None:
    docs = {**SEED, "tax": with_protocol(SEED["tax"], "http")}
    rules = [{"source": "invoice", "destination": "tax", "permissions": [
                 {"action": "allow", "http": {"PathPrefix": "/rates", "Methods": ["GET"]}}]},
             {"source": "*", "destination": "tax", "action": "deny", "description": "closed by default"}]
    spec = load(tmp_path / "p", docs, {"name": "shop", "intentions": rules, "external_services": ["payments"]})
    desired = desired_policy(spec)
    assert desired.project == "shop"
    assert desired.sources[("tax", "invoice")] == {
        "Name": "invoice", "Type": "consul",
        "Permissions": [{"Action": "allow", "HTTP": {"Methods": ["GET"], "PathPrefix": "/rates"}}]}
    assert desired.reasons[("tax", "invoice")] == "nomadmesh.json intentions[0]"
    assert desired.sources[("tax", "*")]["Action"] == "deny"
    assert desired.service_defaults == {"tax": {"Kind": "service-defaults", "Name": "tax", "Protocol": "http",
                                                "Meta": {"nomadmesh-managed": "true", "nomadmesh-project": "shop"}}}

    (tmp_path / "p" / "nomadmesh.json").write_text(json.dumps({"derive_intentions": False,
                                                               "external_services": ["payments"]}))
    assert desired_policy(load_spec(tmp_path / "p" / "services")).sources == {}


def test_rules_are_overridable_per_env(tmp_path: Path) -> None:
    spec_root = tmp_path / "p"
    load(spec_root, project={"external_services": ["payments"],
                             "intentions": [{"source": "order", "destination": "tax", "action": "deny"}]})
    (spec_root / "envs").mkdir()
    (spec_root / "envs" / "prod.json").write_text(json.dumps({"project": {"intentions": [
        {"source": "order", "destination": "tax", "action": "allow"}]}}))
    prod = desired_policy(load_spec(spec_root / "services", env="prod"))
    assert prod.sources[("tax", "order")]["Action"] == "allow"


# --- validation ---------------------------------------------------------------------------------


def test_rule_and_protocol_errors_name_file_and_field(tmp_path: Path) -> None:
    docs = {**SEED, "order": with_protocol(SEED["order"], "thrift")}
    (tmp_path / "nomadmesh.json").write_text(json.dumps({"external_services": ["payments"], "intentions": [
        {"source": "order", "destination": "tax", "permissions": [{"action": "allow", "http": {"PathPrefix": "/"}}]},
        {"source": "order", "destination": "tax", "action": "allow", "permissions": []},
        {"source": "order", "destination": "tax", "action": "maybe"},
        {"source": "Bad Name", "destination": "tax", "action": "deny"},
    ]}))
    found = problems(tmp_path, docs)
    assert ("order", "service.connect.sidecar_service.proxy.config.protocol",
            "must be one of tcp, http, http2, grpc, got 'thrift'") in found
    by_field = {f: m for folder, f, m in found if folder == tmp_path.name}
    assert by_field["intentions[0].permissions"].startswith(
        "L7 permissions need an HTTP protocol, but 'tax' is tcp; set "
        "service.connect.sidecar_service.proxy.config.protocol to http, http2 or grpc in ")
    assert by_field["intentions[1]"] == \
        "needs exactly one of 'action' (allow or deny) and 'permissions' (L7 rules)"
    assert by_field["intentions[2].action"] == "must be one of allow, deny, got 'maybe'"
    assert "is not a valid name" in by_field["intentions[3].source"]


def test_unknown_service_in_a_rule_is_a_warning_and_still_written(tmp_path: Path) -> None:
    spec = load(tmp_path / "p", project={"external_services": ["payments"],
                                         "intentions": [{"source": "ghost", "destination": "tax", "action": "deny"}]})
    assert any("intentions[0].source: 'ghost' is not a service defined here" in w for w in spec.warnings)
    assert desired_policy(spec).sources[("tax", "ghost")]["Action"] == "deny"


def test_a_rule_consul_would_refuse_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    docs = {**SEED, "tax": with_protocol(SEED["tax"], "http")}
    spec = load(tmp_path / "p", docs, {"external_services": ["payments"], "intentions": [
        {"source": "order", "destination": "tax", "permissions": [{"action": "allow", "http": {"PathPrefix": "v1"}}]}]})
    with pytest.raises(SpecError) as e:
        render_jobs(spec)
    assert str(e.value).endswith("nomadmesh.json: intentions[0]: Consul would refuse it: "
                                 "Permissions[0].HTTP.PathPrefix doesn't start with '/': \"v1\"")


def test_validate_reports_a_rule_consul_would_refuse_with_exit_2(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from nomadmesh.cli.main import cli

    docs = {**SEED, "tax": with_protocol(SEED["tax"], "http")}
    fetch = [{"action": "allow", "http": {"Methods": ["FETCH"]}}]
    load(tmp_path / "p", docs, {"external_services": ["payments"], "intentions": [
        {"source": "order", "destination": "tax", "permissions": fetch}]})
    r = CliRunner().invoke(cli, ["validate", "--services", str(tmp_path / "p" / "services")])
    assert r.exit_code == 2
    assert "nomadmesh.json: intentions[0]: Consul would refuse it: " in r.stderr and "FETCH" in r.stderr


def test_protocol_is_rendered_into_the_sidecar_proxy_config(tmp_path: Path) -> None:
    spec = load(tmp_path / "p", {**SEED, "invoice": with_protocol(SEED["invoice"], "grpc")},
                {"external_services": ["payments"]})
    assert spec.service("invoice").protocol == "grpc" and spec.service("order").protocol is None
    rendered = render_jobs(spec)
    job = parse_hcl(rendered.sources["invoice"].hcl, rendered.sources["invoice"].var_file())
    proxy = job["TaskGroups"][0]["Services"][0]["Connect"]["SidecarService"]["Proxy"]
    assert proxy["Config"] == {"protocol": "grpc"}
    assert [u["DestinationName"] for u in proxy["Upstreams"]] == ["tax", "payments"]
    assert "protocol" not in rendered.sources["order"].hcl


# --- the diff -----------------------------------------------------------------------------------

ALLOW = {"Name": "invoice", "Type": "consul", "Action": "allow", "Description": "d"}


def desired(**sources: dict[str, Any]) -> Desired:
    d = Desired("shop")
    for key, src in sources.items():
        dest, name = key.split("__")
        d.sources[(dest, name)] = src
    return d


def entry(dest: str, *sources: dict[str, Any], **meta: str) -> dict[str, Any]:
    return {"Kind": "service-intentions", "Name": dest, "Sources": list(sources),
            **({"Meta": dict(meta)} if meta else {})}


OURS = {"nomadmesh-source-invoice": "deploy:shop"}


@pytest.mark.parametrize("live,reset,expected", [
    ({}, False, "create"),
    ({"tax": entry("tax", {**ALLOW, "Precedence": 9}, **OURS)}, False, "noop"),
    ({"tax": entry("tax", {**ALLOW, "Description": "old"}, **OURS)}, False, "update"),
    ({"tax": entry("tax", {**ALLOW, "Action": "deny"}, **OURS)}, False, "update"),
    ({"tax": entry("tax", {**ALLOW, "Action": "deny"})}, False, "override"),
    ({"tax": entry("tax", {**ALLOW, "Action": "deny"}, **{"nomadmesh-source-invoice": "deploy:other"})}, False,
     "override"),
    ({"tax": entry("tax", {**ALLOW, "Action": "deny"})}, True, "update"),
    ({"tax": entry("tax", {**ALLOW, "Description": "someone else's allow"})}, False, "noop"),
])
def test_one_desired_source_against_live(live: dict[str, Any], reset: bool, expected: str) -> None:
    (change,) = plan_entries(desired(tax__invoice=ALLOW), live, {}, reset_overrides=reset)
    assert (change.kind, change.name, change.source, change.action) == ("service-intentions", "tax", "invoice",
                                                                        expected)
    assert change.writes == (expected in ("create", "update"))


def test_only_our_own_sources_are_ever_deleted() -> None:
    live = {"tax": entry("tax", ALLOW, {**ALLOW, "Name": "order"}, {**ALLOW, "Name": "web"},
                         **{"nomadmesh-source-invoice": "deploy:shop", "nomadmesh-source-order": "deploy:other",
                            "nomadmesh-source-web": "intent:ops@box"})}
    changes = plan_entries(desired(), live, {})
    assert [(c.source, c.action, c.owner) for c in changes] == [("invoice", "delete", "deploy:shop")]


def test_an_unnamed_project_never_deletes_what_it_no_longer_declares() -> None:
    # Every unnamed project is "default": an allow this one no longer declares may be another's.
    for project in ("default", "default.pr7"):
        owner = f"deploy:{project}"
        live_intentions = {"tax": entry("tax", ALLOW, **{"nomadmesh-source-invoice": owner})}
        live_defaults = {"d": {"Name": "d", "Protocol": "http",
                               "Meta": {"nomadmesh-managed": "true", "nomadmesh-project": project}}}
        assert plan_entries(Desired(project), live_intentions, live_defaults) == ()
    named = plan_entries(Desired("shop.pr7"), {"tax": entry("tax", ALLOW, **{"nomadmesh-source-invoice":
                                                                               "deploy:shop.pr7"})}, {})
    assert [c.action for c in named] == ["delete"]


def test_service_defaults_create_update_override_delete() -> None:
    d = Desired("shop", service_defaults={
        name: {"Kind": "service-defaults", "Name": name, "Protocol": "http",
               "Meta": {"nomadmesh-managed": "true", "nomadmesh-project": "shop"}} for name in ("a", "b", "c", "e")})
    ours = {"nomadmesh-managed": "true", "nomadmesh-project": "shop"}
    live = {"b": {"Name": "b", "Protocol": "grpc", "Meta": ours}, "c": {"Name": "c", "Protocol": "tcp"},
            "d": {"Name": "d", "Protocol": "http", "Meta": ours}, "e": {"Name": "e", "Protocol": "http"},
            "f": {"Name": "f", "Protocol": "http"}}
    live["b"] |= {"Kind": "service-defaults", "CreateIndex": 7, "ModifyIndex": 9, "MaxInboundConnections": 10}
    changes = {c.name: c for c in plan_entries(d, {}, live)}
    assert {n: c.action for n, c in changes.items()} == {
        "a": "create", "b": "update", "c": "override", "d": "delete", "e": "noop"}
    # What we do not manage in an entry we update is written back; the indexes are Consul's to set.
    assert changes["b"].after == {"Kind": "service-defaults", "Name": "b", "Protocol": "http",
                                  "MaxInboundConnections": 10, "Meta": ours}
    assert {c.name: c.action for c in plan_entries(d, {}, live, reset_overrides=True)}["c"] == "update"


def test_report_lines_show_l7_permissions_and_who_wrote_an_override() -> None:
    l7 = {"Name": "web", "Type": "consul", "Permissions": [
        {"Action": "allow", "HTTP": {"PathPrefix": "/api", "Methods": ["GET", "HEAD"]}},
        {"Action": "deny", "HTTP": {"Header": [{"Name": "x-debug", "Present": True}]}}]}
    d = desired(api__web=l7, tax__invoice=ALLOW)
    d.reasons[("api", "web")] = "nomadmesh.json intentions[0]"
    live = {"tax": entry("tax", {**ALLOW, "Action": "deny"}, **{"nomadmesh-source-invoice": "intent:ops@box"})}
    assert format_entries(plan_entries(d, live, {})) == [
        "+ intention web => api: add L7: allow GET,HEAD /api; deny [x-debug] (nomadmesh.json intentions[0])",
        "! intention invoice => tax: override deny, written by intent:ops@box "
        "(kept; --reset-overrides puts the declared rule back)",
    ]


# --- ownership marks ----------------------------------------------------------------------------


def test_an_operator_source_over_a_deploy_source_saves_it_and_unmark_gives_it_back() -> None:
    e = entry("tax", ALLOW, **OURS, owner="terraform")
    taken = mark(e, "invoice", "intent:ops@box")
    assert owner_of(taken, "invoice") == "intent:ops@box"
    assert taken["Meta"]["owner"] == "terraform"
    rest, saved, owner = unmark(taken, "invoice")
    assert (saved, owner) == (ALLOW, "deploy:shop")
    assert rest["Meta"] == {"owner": "terraform"}
    # Nothing saved when the source was not a deploy's; a deploy taking it back drops the saved copy.
    assert unmark(mark(entry("tax", ALLOW), "invoice", "intent:ops@box"), "invoice")[1] is None
    assert "nomadmesh-saved-invoice" not in mark(taken, "invoice", "deploy:shop")["Meta"]
