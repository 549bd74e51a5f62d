"""Consul's filter expressions (go-bexpr grammar) on the agent's rows: every operator, precedence,
selectors through maps and lists of structs, typed equality, RE2 `matches`, and the 400 texts for
bad syntax, unknown selectors and bad regexes."""
from __future__ import annotations

from typing import Any

import pytest

from nomadmesh.agent.consul.filter import AGENT_SERVICE, CHECK_SERVICE_NODE, FilterError, compile_filter

ROWS: list[dict[str, Any]] = [
    {"ID": "web-1", "Service": "web", "Tags": ["v1", "prod"], "Meta": {"env": "prod"}, "Port": 80,
     "EnableTagOverride": False, "Address": "10.0.0.1"},
    {"ID": "db-1", "Service": "db", "Tags": [], "Meta": {}, "Port": 5432, "EnableTagOverride": True, "Address": ""},
    {"ID": "web-2", "Service": "web", "Tags": ["v2"], "Meta": {"env": "staging"}, "Port": 8080,
     "EnableTagOverride": False, "Address": "10.0.0.2"},
]


def ids(expression: str) -> list[str]:
    predicate = compile_filter(expression, AGENT_SERVICE)
    return [r["ID"] for r in ROWS if predicate(r)]


@pytest.mark.parametrize(("expression", "expected"), [
    ("Service == web", ["web-1", "web-2"]),
    ('Service == "web"', ["web-1", "web-2"]),
    ("Service != web", ["db-1"]),
    ("v1 in Tags", ["web-1"]),
    ('"v1" not in Tags', ["db-1", "web-2"]),
    ("Tags contains v2", ["web-2"]),
    ("Tags not contains v2", ["web-1", "db-1"]),
    ("Tags is empty", ["db-1"]),
    ("Tags is not empty", ["web-1", "web-2"]),
    ("Address is empty", ["db-1"]),
    ("Meta.env == prod", ["web-1"]),
    ('Meta["env"] != prod', ["db-1", "web-2"]),  # a missing key is unequal
    ("env in Meta", ["web-1", "web-2"]),
    ('Address matches "^10\\\\.0\\\\.0\\\\.[12]$"', ["web-1", "web-2"]),  # \\. in double quotes
    ("Address matches `^10\\.0\\.0\\.1$`", ["web-1"]),  # raw in backquotes
    ("Service not matches `^w`", ["db-1"]),
    ("Port == 5432", ["db-1"]),
    ("Port == 5432.0", ["db-1"]),
    ("EnableTagOverride == true", ["db-1"]),
    ("not Service == web", ["db-1"]),
    ("Service == web and Port == 80 or Service == db", ["web-1", "db-1"]),  # and binds tighter than or
    ("Service == web and (Port == 80 or Port == 5432)", ["web-1"]),
    ("not (Tags is empty or Meta.env == staging)", ["web-1"]),
])
def test_operators(expression: str, expected: list[str]) -> None:
    assert ids(expression) == expected


def test_selectors_through_nested_structs_and_lists() -> None:
    row = {"Node": {"Node": "n1", "Meta": {"rack": "a"}}, "Service": {"Service": "web", "Tags": ["x"]},
           "Checks": [{"CheckID": "serfHealth", "Status": "passing"}, {"CheckID": "c", "Status": "critical"}]}
    for expression, wanted in [("Checks.Status == critical", True), ("critical in Checks.Status", True),
                               ("warning in Checks.Status", False), ("Service.Tags contains x", True),
                               ("Node.Meta.rack == a", True), ("Checks is empty", False)]:
        assert compile_filter(expression, CHECK_SERVICE_NODE)(row) is wanted, expression


@pytest.mark.parametrize(("expression", "message"), [
    ("Foo == 1", 'Selector "Foo" is not valid'),
    ("Checks.Foo == 1", 'Selector "Checks.Foo" is not valid'),
    ("Service ==", "1:11 (10): no match found, expected: BAREWORD, STRING"),
    ("Service = web", "1:9 (8): no match found"),
    ("(Service == web", "no match found, expected: \")\""),
    ("Service matches \"(a\"", "error parsing regexp: missing ): (a"),
    ('Service == "unterminated', "no match found"),
    ('Service matches "\\."', "invalid quoted string"),  # Go refuses the escape \. too
])
def test_refusals(expression: str, message: str) -> None:
    schema = CHECK_SERVICE_NODE if expression.startswith("Checks") else AGENT_SERVICE
    with pytest.raises(FilterError) as info:
        compile_filter(expression, schema)
    assert str(info.value).startswith("Failed to create boolean expression evaluator: ")
    assert message in str(info.value)


def test_hostile_regex_is_linear() -> None:
    """(a+)+$ on a long non-matching string is catastrophic for backtracking engines, not for RE2."""
    predicate = compile_filter('Service matches "(a+)+$"', AGENT_SERVICE)
    assert predicate({"Service": "a" * 100_000 + "!"}) is False
    assert predicate({"Service": "a" * 100_000}) is True
