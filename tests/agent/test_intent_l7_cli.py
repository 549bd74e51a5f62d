"""`nomadmesh intent allow|deny` with L7 permissions, against the real agent (py-consul reads back)."""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from nomadmesh.cli.main import cli


@pytest.fixture
def intent(module_agent, consul) -> Iterator:
    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["intent", *args], env={"CONSUL_HTTP_ADDR": module_agent.consul_addr})
    consul.config.set("service-defaults", "api", {"Protocol": "http"})  # Consul wants L7 on an HTTP service
    try:
        yield run
    finally:
        consul.config.delete("service-intentions", "api")
        consul.config.delete("service-defaults", "api")


def source(consul, name: str, destination: str = "api") -> dict:
    entry = consul.config.get("service-intentions", destination) or {}
    return next((s for s in entry.get("Sources") or [] if s["Name"] == name), {})


def test_flags_write_one_permission_in_consuls_shape(intent, consul) -> None:
    r = intent("allow", "web", "api", "--path-prefix", "/public", "--method", "get", "--header", "X-Team=blue",
               "--header", "X-Trace")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        "Created: web => api (L7 permissions)",
        "  allow PathPrefix=/public Methods=GET Header[X-Team]=blue Header[X-Trace] present"]
    got = source(consul, "web")
    assert "Action" not in got
    assert got["Permissions"] == [{"Action": "allow", "HTTP": {
        "PathPrefix": "/public", "Methods": ["GET"],
        "Header": [{"Name": "X-Team", "Exact": "blue"}, {"Name": "X-Trace", "Present": True}]}}]
    assert intent("allow", "web", "api", "--path-prefix", "/public", "--method", "GET", "--header", "X-Team=blue",
                  "--header", "X-Trace").stdout.startswith("Unchanged: web => api (L7 permissions)")


def test_permission_groups_keep_their_order_and_actions(intent, consul) -> None:
    r = intent("allow", "web", "api", "--path-exact", "/health",
               "--permission", "path-prefix=/admin,action=deny",
               "--permission", r"path-regex=/v[0-9]{1\,2}/.*,method=GET,method=HEAD")
    assert r.exit_code == 0, r.output
    assert source(consul, "web")["Permissions"] == [
        {"Action": "allow", "HTTP": {"PathExact": "/health"}},
        {"Action": "deny", "HTTP": {"PathPrefix": "/admin"}},
        {"Action": "allow", "HTTP": {"PathRegex": "/v[0-9]{1,2}/.*", "Methods": ["GET", "HEAD"]}}]


def test_list_and_check_show_the_permissions(intent) -> None:
    intent("allow", "web", "api", "--path-prefix", "/public", "--permission", "path-exact=/admin,action=deny")
    lines = intent("list").stdout.splitlines()
    row = next(n for n, line in enumerate(lines) if line.split()[:3] == ["web", "api", "l7"])
    assert lines[row + 1:row + 3] == ["  allow PathPrefix=/public", "  deny PathExact=/admin"]

    r = intent("check", "web", "api")
    assert r.exit_code == 1  # as Consul's check: L7 cannot be decided from names alone
    assert r.stdout.splitlines() == ["Denied", "rule: web => api has L7 permissions (evaluated per request)",
                                     "  allow PathPrefix=/public", "  deny PathExact=/admin"]
    doc = json.loads(intent("check", "web", "api", "--json").stdout)
    assert doc["permissions"][1] == {"Action": "deny", "HTTP": {"PathExact": "/admin"}}


def test_plain_allow_over_l7_needs_replace_and_writes_nothing_without(intent, consul) -> None:
    # Regression: this used to replace the L7 permissions silently with a plain allow.
    consul.config.set("service-intentions", "api", {"Sources": [
        {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/public"}}]}]})
    before = consul.config.get("service-intentions", "api")
    r = intent("allow", "web", "api")
    assert r.exit_code == 1
    assert r.output == ("Error: web => api has L7 permissions: allow PathPrefix=/public; writing allow would replace "
                        "it (nothing written); pass --replace to replace it\n")
    assert consul.config.get("service-intentions", "api")["ModifyIndex"] == before["ModifyIndex"]
    assert intent("deny", "web", "api").exit_code == 1

    r = intent("deny", "web", "api", "--replace")
    assert r.exit_code == 0 and r.stdout == "Updated: web => api (deny, was L7 permissions)\n"
    assert source(consul, "web") == {**source(consul, "web"), "Action": "deny"}
    assert "Permissions" not in source(consul, "web")


def test_l7_over_a_plain_source_needs_replace(intent, consul) -> None:
    intent("deny", "web", "api")
    r = intent("allow", "web", "api", "--path-prefix", "/public")
    assert r.exit_code == 1 and "web => api has deny; writing L7 permissions" in r.output
    assert source(consul, "web")["Action"] == "deny"
    r = intent("allow", "web", "api", "--path-prefix", "/public", "--replace")
    assert r.exit_code == 0 and r.stdout.startswith("Updated: web => api (L7 permissions, was deny)")


def test_other_permissions_replace_l7_without_replace(intent, consul) -> None:
    intent("allow", "web", "api", "--path-prefix", "/public")
    r = intent("allow", "web", "api", "--path-prefix", "/v2")
    assert r.exit_code == 0 and r.stdout.startswith("Updated: web => api (L7 permissions, was L7 permissions)")
    assert source(consul, "web")["Permissions"] == [{"Action": "allow", "HTTP": {"PathPrefix": "/v2"}}]


@pytest.mark.parametrize(("args", "message"), [
    (("--path-prefix", "public"), "path-prefix 'public' must start with '/'"),
    (("--path-regex", "/a(b"), "path-regex '/a(b': invalid RE2 regular expression: missing )"),
    (("--path-regex", "/x{100}"), "RE2 program size of"),
    (("--method", "FETCH"), "method 'FETCH' is not one of GET, HEAD, POST"),
    (("--method", "GET", "--method", "get"), "a method is listed twice"),
    (("--header", "X Team=blue"), "'X Team' is not an HTTP header name"),
    (("--path-exact", "/a", "--path-prefix", "/b"), "at most one of --path-exact, --path-prefix, --path-regex"),
    (("--permission", "path=/a"), "--permission 1: 'path=/a' is not KEY=VALUE with a key among"),
    (("--permission", "action=maybe,path-exact=/a"), "--permission 1: action must be allow or deny"),
    (("--permission", "action=deny"), "--permission 1: says nothing to match"),
])
def test_bad_permissions_exit_2_and_write_nothing(intent, consul, args: tuple[str, ...], message: str) -> None:
    r = intent("allow", "web", "api", *args)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert consul.config.get("service-intentions", "api") is None


def test_l7_to_the_wildcard_destination_exits_2(intent, consul) -> None:
    r = intent("allow", "web", "*", "--path-prefix", "/a")
    assert r.exit_code == 2 and "wildcard destination" in r.output
    assert consul.config.get("service-intentions", "*") is None


def test_consuls_refusal_on_a_tcp_destination_is_shown(intent, consul) -> None:
    r = intent("allow", "web", "tcp-only", "--path-prefix", "/a")
    assert r.exit_code == 1
    assert "incompatible with L7 intentions permissions" in r.output and "Traceback" not in r.output
    assert consul.config.get("service-intentions", "tcp-only") is None
