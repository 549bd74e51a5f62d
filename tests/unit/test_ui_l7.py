"""The edge panel's L7 edits (nomadmesh.ui.l7): which intention gets the rules, rules from the form with
the CLI's checks, adding and removing. Pure."""
from __future__ import annotations

import pytest

from nomadmesh.mesh import intentions as ixn
from nomadmesh.mesh.permission_input import BadPermission
from nomadmesh.ui import l7


def rule(action: str, prefix: str) -> ixn.Permission:
    return ixn.permissions_from_json([{"Action": action, "HTTP": {"PathPrefix": prefix}}])[0]


def test_rules_go_to_the_deciding_l7_intention_of_this_destination_else_to_the_exact_pair() -> None:
    wild = ixn.Intention("*", "api", None, (rule("allow", "/public"),))
    plain = ixn.Intention("web", "db", "allow")
    found = [wild, plain]
    assert l7.target_of("web", "api", found, False) == l7.Target("*", "api", wild)
    assert l7.target_of("web", "db", found, False) == l7.Target("web", "db", plain)
    assert l7.target_of("web", "cache", found, True) == l7.Target("web", "cache", None)
    deny_all = ixn.Intention("web", "*", "deny")  # decides web → cache, but rules go to web → cache
    assert l7.target_of("web", "cache", [deny_all], True) == l7.Target("web", "cache", None)


def test_form_rules_use_the_clis_checks_and_messages() -> None:
    got = l7.rule_from_form({"action": "deny", "path_kind": "path-regex", "path": "/v[0-9]+",
                             "header": "X-Team=blue"}, ["get"])
    assert ixn.permission_text(got) == "deny PathRegex=/v[0-9]+ Methods=GET Header[X-Team]=blue"
    for form, methods, says in (({"action": "allow", "path_kind": "path-regex", "path": "("}, [],
                                 "the new rule: path-regex '(': invalid RE2 regular expression"),
                                ({"action": "maybe"}, [], "action must be allow or deny"),
                                ({"action": "allow", "path_kind": "path-glob", "path": "/x"}, [], "path-glob"),
                                ({"action": "allow"}, ["GET", "GET"], "a method is listed twice")):
        with pytest.raises(BadPermission, match=r"^the new rule: ") as e:
            l7.rule_from_form(form, methods)
        assert says in str(e.value)


def test_add_refuses_a_duplicate_and_remove_checks_position_text_and_the_last_rule() -> None:
    a, b = rule("allow", "/a"), rule("deny", "/b")
    target = l7.Target("web", "api", ixn.Intention("web", "api", None, (a, b)))
    assert l7.with_rule(l7.Target("web", "api", None), a) == (a,)
    with pytest.raises(l7.L7EditError, match="already has the rule allow PathPrefix=/a"):
        l7.with_rule(target, a)
    assert l7.without_rule(target, 1, "allow PathPrefix=/a") == (b,)
    for position, text in ((1, "deny PathPrefix=/b"), (3, "allow PathPrefix=/a"), (0, "")):
        with pytest.raises(l7.L7EditError, match="changed meanwhile"):
            l7.without_rule(target, position, text)
    with pytest.raises(l7.L7EditError, match="last L7 rule"):
        l7.without_rule(l7.Target("web", "api", ixn.Intention("web", "api", None, (a,))), 1, "allow PathPrefix=/a")


def test_only_http_like_destinations_take_l7_rules() -> None:
    assert l7.protocol_refusal("api", "grpc", "service-defaults api") is None
    said = l7.protocol_refusal("db", "tcp", "service-defaults db")
    assert said is not None and said.startswith("db speaks tcp (service-defaults db): L7 rules need http")


def test_the_posted_edge_must_name_services_and_not_the_wildcard_destination() -> None:
    assert l7.edge_problem("web", "api") is None and l7.edge_problem("*", "api") is None
    assert (l7.edge_problem("Web App", "api") or "").startswith("source: 'Web App' is not a valid service name")
    assert l7.edge_problem("web", "*") == "L7 permissions cannot be written for the wildcard destination *"
