"""`check_mesh` findings (pure table tests) and `nomadmesh mesh check` exit codes against the real agent."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from nomadmesh.cli.main import cli
from nomadmesh.definitions.model import Project, Service, Spec, Upstream
from nomadmesh.deploy import intentions as di
from nomadmesh.mesh.check import check_mesh, verdicts
from nomadmesh.mesh.intentions import HTTPMatch, Intention, Permission
from support.paths import REPO

SERVICES = str(REPO / "services")


def spec(edges: dict[str, tuple[str, ...]]) -> Spec:
    """A spec whose services call the given upstreams (ports are irrelevant to intentions)."""
    services = tuple(
        Service(name=name, port=5000 + i, source=f"services/{name}/service.json",
                upstreams=tuple(Upstream(dst, 6000 + j) for j, dst in enumerate(ups)))
        for i, (name, ups) in enumerate(sorted(edges.items()))
    )
    return Spec(project=Project(), services=services)


SEED = spec({"order": ("invoice",), "invoice": ("tax",), "tax": ()})


def allow(src: str, dst: str) -> Intention:
    return Intention(src, dst, "allow")


def deny(src: str, dst: str) -> Intention:
    return Intention(src, dst, "deny")


def l7(src: str, dst: str) -> Intention:
    return Intention(src, dst, None, permissions=(Permission("allow", HTTPMatch(path_prefix="/tax")),))


# (case, default_allow, intentions, expected {(severity, code, source, destination)})
CASES = [
    ("nothing, default allow: clean", True, [], set()),
    ("nothing, default deny: every upstream denied", False, [],
     {("error", "upstream-denied", "order", "invoice"), ("error", "upstream-denied", "invoice", "tax")}),
    ("default deny, exact allow per upstream: clean", False, [allow("order", "invoice"), allow("invoice", "tax")],
     set()),
    ("default deny, * => * allow decides every upstream: clean", False, [allow("*", "*")], set()),
    ("exact deny beats * => tax allow, which then decides no upstream", True,
     [deny("invoice", "tax"), allow("*", "tax")],
     {("error", "upstream-denied", "invoice", "tax"), ("warning", "unused-allow", "*", "tax")}),
    ("wildcard deny silently denies a declared upstream", True, [deny("*", "tax")],
     {("error", "upstream-denied", "invoice", "tax")}),
    ("allow-list pattern (* => tax deny, invoice => tax allow) is intended", True,
     [deny("*", "tax"), allow("invoice", "tax")], set()),
    ("allow no declared upstream uses", True, [allow("order", "tax")],
     {("warning", "unused-allow", "order", "tax")}),
    ("allow for a caller outside the folder is not judged", True, [allow("ingress", "order")], set()),
    ("a wildcard allow that decides an upstream is used", False, [allow("*", "tax"), allow("order", "invoice")],
     set()),
    ("deny hidden behind a wildcard allow of higher precedence", True,
     [deny("invoice", "*"), allow("*", "tax")],
     {("warning", "hidden-deny", "invoice", "*")}),
    ("a more specific exception to a wildcard deny is not hidden-deny", False,
     [deny("*", "*"), allow("*", "tax"), allow("order", "invoice")], set()),
    ("L7 intention on an upstream is decided per request", False, [l7("invoice", "tax"), allow("order", "invoice")],
     {("info", "per-request", "invoice", "tax")}),
]


@pytest.mark.parametrize("default_allow, intentions, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_findings_table(default_allow: bool, intentions: list[Intention], expected: set[tuple[str, ...]]) -> None:
    findings = check_mesh(SEED, intentions, default_allow)
    assert {(f.severity, f.code, f.source, f.destination) for f in findings} == expected


def test_errors_come_first_and_name_the_rule_and_file() -> None:
    findings = check_mesh(SEED, [allow("order", "tax"), deny("*", "tax")], True)
    assert [f.severity for f in findings] == ["error", "warning"]
    error = findings[0]
    assert error.rule == "* => tax"
    assert "services/invoice/service.json" in error.message and "wildcard intention * => tax" in error.message


def test_default_policy_denial_says_so() -> None:
    (finding, _) = check_mesh(SEED, [], False)
    assert finding.rule == "default policy" and "default policy (deny)" in finding.message


def test_hidden_deny_names_the_pairs_and_the_allow() -> None:
    (finding,) = check_mesh(SEED, [deny("invoice", "*"), allow("*", "tax")], True)
    assert "invoice -> tax" in finding.message and "* => tax" in finding.message
    assert "(8 > 6)" in finding.message


def test_external_upstreams_are_checked() -> None:
    s = spec({"order": ("billing",)})
    (finding,) = check_mesh(s, [deny("order", "billing")], True)
    assert (finding.code, finding.destination) == ("upstream-denied", "billing")


def test_verdicts_per_edge() -> None:
    v = verdicts(SEED, [deny("invoice", "tax"), l7("order", "invoice")], True)
    assert v == {("order", "invoice"): "per-request", ("invoice", "tax"): "deny"}


# --- the CLI against a real agent ----------------------------------------------------------------


def mesh_check(agent, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["mesh", "check", "--services", SERVICES, "--consul-addr", agent.consul_addr,
                                      *args])
    return result.exit_code, result.output


def test_cli_clean_mesh_exits_0(module_agent, consul) -> None:
    code, out = mesh_check(module_agent)
    assert code == 0, out
    assert out.startswith("ok: 3 upstream(s) checked against 0 intention(s), default policy allow (from consul)")


def test_cli_denied_upstream_exits_1_with_the_rule(module_agent, consul) -> None:
    di.set_intention(consul, "invoice", "tax", "deny")
    code, out = mesh_check(module_agent)
    assert code == 1
    assert "error" in out and "invoice -> tax" in out and "intention invoice => tax (deny)" in out
    assert "FAILED" in out


def test_cli_warnings_pass_unless_strict(module_agent, consul) -> None:
    di.set_intention(consul, "order", "tax", "allow")
    assert mesh_check(module_agent)[0] == 0
    code, out = mesh_check(module_agent, "--strict")
    assert code == 1 and "decides no declared upstream" in out


def test_cli_json_report(module_agent, consul) -> None:
    di.set_intention(consul, "*", "invoice", "deny")
    code, out = mesh_check(module_agent, "--json", "--default-policy", "deny")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False
    assert doc["default_policy"] == {"action": "deny", "from": "option"}
    assert doc["counts"] == {"error": 3, "warning": 0, "info": 0}
    # The gateway's listener counts as an upstream edge: ingress -> order is judged like the others.
    assert {(f["source"], f["destination"], f["rule"]) for f in doc["findings"]} == {
        ("ingress", "order", "default policy"), ("order", "invoice", "* => invoice"),
        ("invoice", "tax", "default policy")}


def test_cli_default_policy_comes_from_the_agent(agent_factory) -> None:
    agent = agent_factory("--default-policy", "deny")
    code, out = mesh_check(agent, "--json")
    doc = json.loads(out)
    assert code == 1 and doc["default_policy"] == {"action": "deny", "from": "consul"}
    assert doc["counts"]["error"] == 3


def test_cli_unreachable_consul_exits_2(tmp_path: Path) -> None:
    from support.net import free_port

    result = CliRunner().invoke(cli, ["mesh", "check", "--services", SERVICES,
                                      "--consul-addr", f"http://127.0.0.1:{free_port()}"])
    assert result.exit_code == 2
    assert "cannot reach Consul at http://127.0.0.1:" in result.output


def test_cli_bad_definitions_exit_2(module_agent, tmp_path: Path) -> None:
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "service.json").write_text("{not json")
    result = CliRunner().invoke(cli, ["mesh", "check", "--services", str(tmp_path),
                                      "--consul-addr", module_agent.consul_addr])
    assert result.exit_code == 2
    assert "service.json" in result.output
