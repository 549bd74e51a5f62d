"""`nomadmesh intent allow|deny|delete|list|check` against the real agent (py-consul reads back)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from nomadmesh.cli.main import cli
from support.net import free_port


@pytest.fixture
def intent(module_agent, consul):
    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["intent", *args], env={"CONSUL_HTTP_ADDR": module_agent.consul_addr})
    return run


def sources(consul, destination: str) -> dict[str, dict]:
    entry = consul.config.get("service-intentions", destination)
    return {s["Name"]: s for s in entry["Sources"]} if entry else {}


def test_deny_then_allow_then_delete_round_trip(intent, consul) -> None:
    r = intent("deny", "invoice", "tax", "--description", "tax is closed")
    assert r.exit_code == 0 and r.stdout == "Created: invoice => tax (deny)\n"
    assert sources(consul, "tax")["invoice"]["Action"] == "deny"
    assert sources(consul, "tax")["invoice"]["Description"] == "tax is closed"

    assert intent("deny", "invoice", "tax").stdout == "Unchanged: invoice => tax (deny)\n"
    r = intent("allow", "invoice", "tax")
    assert r.stdout == "Updated: invoice => tax (allow, was deny)\n"
    assert sources(consul, "tax")["invoice"]["Action"] == "allow"
    assert sources(consul, "tax")["invoice"]["Description"] == "tax is closed"  # kept: no --description

    r = intent("delete", "invoice", "tax")
    assert r.exit_code == 0 and r.stdout == "Deleted: invoice => tax\n"
    assert consul.config.get("service-intentions", "tax") is None  # last source gone: entry deleted


def test_delete_of_a_missing_intention_exits_1(intent) -> None:
    r = intent("delete", "invoice", "tax")
    assert r.exit_code == 1 and "no intention invoice => tax" in r.output


def test_unregistered_names_warn_but_are_written(intent, consul) -> None:
    r = intent("deny", "ghost", "tax")
    assert r.exit_code == 0
    assert "no service named 'ghost' is registered" in r.stderr
    assert "ghost" in sources(consul, "tax")


def test_list_in_precedence_order_with_columns(intent) -> None:
    for args in (("allow", "*", "*"), ("deny", "invoice", "*"), ("allow", "*", "tax"), ("deny", "invoice", "tax",
                                                                                         "--description", "closed")):
        assert intent(*args).exit_code == 0
    r = intent("list")
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["SOURCE", "DESTINATION", "ACTION", "PRECEDENCE", "DESCRIPTION"]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["invoice", "tax", "deny", "9"], ["*", "tax", "allow", "8"], ["invoice", "*", "deny", "6"],
        ["*", "*", "allow", "5"]]
    assert lines[1].endswith("closed")

    doc = json.loads(intent("list", "--json").stdout)
    assert doc[0] == {"source": "invoice", "destination": "tax", "action": "deny", "precedence": 9,
                      "description": "closed"}
    assert [d["precedence"] for d in doc] == [9, 8, 6, 5]


def test_list_empty(intent) -> None:
    assert intent("list").stdout == "No intentions.\n"
    assert json.loads(intent("list", "--json").stdout) == []


def test_list_shows_l7_intentions(intent, consul) -> None:
    consul.config.set("service-defaults", "tax", {"Protocol": "http"})
    try:
        consul.config.set("service-intentions", "tax", {"Sources": [
            {"Name": "invoice", "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/tax"}}]}]})
        doc = json.loads(intent("list", "--json").stdout)
        assert doc[0]["action"] == "l7"
        assert doc[0]["permissions"] == [{"Action": "allow", "HTTP": {"PathPrefix": "/tax"}}]
        r = intent("check", "invoice", "tax")
        assert r.exit_code == 1 and "L7 permissions" in r.stdout
    finally:
        consul.config.delete("service-intentions", "tax")
        consul.config.delete("service-defaults", "tax")


def test_check_exit_codes_and_deciding_rule(intent) -> None:
    r = intent("check", "invoice", "tax")
    assert r.exit_code == 0 and r.stdout == "Allowed\nrule: default policy (allow)\n"

    intent("deny", "invoice", "tax")
    r = intent("check", "invoice", "tax")
    assert r.exit_code == 1 and r.stdout == "Denied\nrule: invoice => tax (deny)\n"

    r = intent("check", "invoice", "tax", "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout) == {"source": "invoice", "destination": "tax", "allowed": False,
                                    "rule": "invoice => tax (deny)"}


def test_exact_deny_beats_wildcard_allow(intent, consul) -> None:
    intent("allow", "*", "tax")
    intent("deny", "invoice", "tax")
    assert set(sources(consul, "tax")) == {"*", "invoice"}
    assert intent("check", "invoice", "tax").exit_code == 1
    r = intent("check", "order", "tax")
    assert r.exit_code == 0 and "rule: * => tax (allow)" in r.stdout
    # The check agrees with Consul's own /check endpoint.
    assert consul.connect.intentions.check("invoice", "tax") is False
    assert consul.connect.intentions.check("order", "tax") is True


def test_wildcard_destination_and_precedence_8_over_6(intent) -> None:
    intent("deny", "invoice", "*")
    intent("allow", "*", "tax")
    r = intent("check", "invoice", "tax")
    assert r.exit_code == 0 and "rule: * => tax (allow)" in r.stdout  # *→exact (8) outranks exact→* (6)
    r = intent("check", "invoice", "order")
    assert r.exit_code == 1 and "rule: invoice => * (deny)" in r.stdout


def test_default_policy_option_and_agent_default(intent, agent_factory) -> None:
    assert intent("check", "a", "b", "--default-policy", "deny").exit_code == 1
    strict = agent_factory("--default-policy", "deny")
    r = CliRunner().invoke(cli, ["intent", "check", "a", "b", "--consul-addr", strict.consul_addr])
    assert r.exit_code == 1 and r.stdout == "Denied\nrule: default policy (deny)\n"


@pytest.mark.parametrize("args", [("allow", "Invoice", "tax"), ("deny", "invoice", "tax_"), ("check", "a b", "c"),
                                  ("delete", "x-", "tax"), ("allow", "**", "tax")])
def test_bad_names_exit_2_with_the_rule(intent, args: tuple[str, ...]) -> None:
    r = intent(*args)
    assert r.exit_code == 2
    assert "is not a valid service name" in r.output and "(or * for any)" in r.output


def test_unreachable_consul() -> None:
    addr = f"http://127.0.0.1:{free_port()}"
    r = CliRunner().invoke(cli, ["intent", "deny", "invoice", "tax", "--consul-addr", addr])
    assert r.exit_code == 1 and r.output == f"Error: cannot reach Consul at {addr}: connection refused\n"
    r = CliRunner().invoke(cli, ["intent", "check", "invoice", "tax", "--consul-addr", addr])
    assert r.exit_code == 2  # 1 would read as "Denied"


def test_a_description_over_consuls_limit_exits_2_and_writes_nothing(intent, consul) -> None:
    r = intent("deny", "invoice", "tax", "--description", "x" * 513)
    assert r.exit_code == 2 and "at most 512 characters (Consul's limit), not 513" in r.output
    assert consul.config.get("service-intentions", "tax") is None
    assert intent("deny", "invoice", "tax", "--description", "x" * 512).exit_code == 0
