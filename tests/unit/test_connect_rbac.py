"""Intentions → Envoy RBAC: the intermediate form (table tests) and the resulting Envoy policy
checked against Consul's own evaluation order for many intention sets (property test)."""
from __future__ import annotations

import re

import re2
from envoy.config.rbac.v3 import rbac_pb2
from hypothesis import given, settings, strategies as st

from nomadmesh.agent.connect.resources.rbac import (
    L7,
    RBACIntention,
    RBACPermission,
    http_rbac,
    intermediate_form,
    network_rbac,
    principal_regex,
    rbac_rules,
)
from nomadmesh.mesh.intentions import HeaderMatch, HTTPMatch, Intention, Permission, evaluate, sort_by_precedence

DENY, ALLOW = rbac_pb2.RBAC.DENY, rbac_pb2.RBAC.ALLOW
A = Intention("web", "db", "deny")
B = Intention("api", "db", "allow")
C = Intention("*", "db", "deny")
ADMIN = HTTPMatch(path_prefix="/admin")
POST = HTTPMatch(methods=("POST",))


def spiffe(name: str) -> str:
    return f"spiffe://abc.consul/ns/default/dc/dc1/svc/{name}"


# --- a tiny interpreter of the Envoy messages we produce ------------------------------------


def _string(m, value: str | None) -> bool:
    if value is None:
        return False
    kind = m.WhichOneof("match_pattern")
    if kind == "exact":
        return value == m.exact
    if kind == "prefix":
        return value.startswith(m.prefix)
    if kind == "suffix":
        return value.endswith(m.suffix)
    if kind == "safe_regex":
        return re.fullmatch(m.safe_regex.regex, value) is not None
    raise AssertionError(kind)


def principal_matches(p: rbac_pb2.Principal, uri: str) -> bool:
    kind = p.WhichOneof("identifier")
    if kind == "authenticated":
        return _string(p.authenticated.principal_name, uri)
    if kind == "and_ids":
        return all(principal_matches(x, uri) for x in p.and_ids.ids)
    if kind == "not_id":
        return not principal_matches(p.not_id, uri)
    raise AssertionError(kind)


def permission_matches(p: rbac_pb2.Permission, req: dict) -> bool:
    kind = p.WhichOneof("rule")
    if kind == "any":
        return True
    if kind == "and_rules":
        return all(permission_matches(x, req) for x in p.and_rules.rules)
    if kind == "not_rule":
        return not permission_matches(p.not_rule, req)
    if kind == "url_path":
        return _string(p.url_path.path, req["path"])
    if kind == "header":
        h = p.header
        value = req["method"] if h.name == ":method" else req["headers"].get(h.name)
        hit = value is not None if h.WhichOneof("header_match_specifier") == "present_match" else _string(
            h.string_match, value)
        return hit != h.invert_match
    raise AssertionError(kind)


def allowed_by(rules: rbac_pb2.RBAC, source: str, req: dict) -> bool:
    hit = any(
        any(principal_matches(pr, spiffe(source)) for pr in pol.principals)
        and any(permission_matches(pe, req) for pe in pol.permissions)
        for pol in rules.policies.values()
    )
    return hit if rules.action == ALLOW else not hit


def consul_l7_decision(source: str, req: dict, intentions: list[Intention], default_allow: bool) -> bool:
    """Consul's order: the first intention whose source matches decides; an L7 one by its first
    matching permission, falling back to the default policy."""
    for ixn in sort_by_precedence(intentions):
        if not ixn.matches(source, "db"):
            continue
        if not ixn.is_l7:
            return ixn.action == "allow"
        for perm in ixn.permissions:
            if permission_matches(_perm_msg(perm.http), req):
                return perm.action == "allow"
        return default_allow
    return default_allow


def _perm_msg(match: HTTPMatch) -> rbac_pb2.Permission:
    from nomadmesh.agent.connect.resources.rbac import http_permission
    return http_permission(match)


# --- table tests -----------------------------------------------------------------------------


def test_worked_example_default_allow() -> None:
    form = intermediate_form([C, B, A], default_allow=True, is_http=False)
    assert form == [RBACIntention("web", "deny"), RBACIntention("*", "deny", not_sources=("web", "api"))]
    rules = rbac_rules([A, B, C], True, False)
    assert rules.action == DENY
    assert list(rules.policies) == ["consul-intentions-layer4"]
    assert [allowed_by(rules, s, {}) for s in ("web", "api", "other")] == [False, True, False]


def test_worked_example_default_deny() -> None:
    assert intermediate_form([A, B, C], default_allow=False, is_http=False) == [RBACIntention("api", "allow")]
    rules = rbac_rules([A, B, C], False, False)
    assert rules.action == ALLOW
    assert [allowed_by(rules, s, {}) for s in ("web", "api", "other")] == [False, True, False]


def test_intentions_equal_to_the_default_vanish_and_empty_allow_denies_all() -> None:
    assert intermediate_form([B], default_allow=True, is_http=False) == []
    rules = rbac_rules([B], True, False)
    assert rules.action == DENY and not rules.policies  # deny nobody: everyone allowed
    rules = rbac_rules([], False, False)
    assert rules.action == ALLOW and not rules.policies  # allow nobody
    assert not allowed_by(rules, "api", {})


def test_wildcard_destination_intentions_rank_below_exact_ones() -> None:
    ixns = [Intention("web", "*", "deny"), Intention("web", "db", "allow")]
    form = intermediate_form(ixns, default_allow=True, is_http=False)
    # web→db (9) allows, so web→* (6) must not decide for web: it is negated away entirely.
    assert form == [RBACIntention("web", "deny", not_sources=("web",))]
    assert allowed_by(rbac_rules(ixns, True, False), "web", {})


def test_principal_regex_matches_any_trust_domain_and_dc_but_only_that_name() -> None:
    rx = principal_regex("web")
    assert rx == "^spiffe://[^/]+/ns/[^/]+/dc/[^/]+/svc/web$"
    assert re.fullmatch(rx, "spiffe://x.consul/ns/default/dc/dc9/svc/web")
    assert not re.fullmatch(rx, "spiffe://x.consul/ns/default/dc/dc9/svc/web2")
    assert re.fullmatch(principal_regex("*"), "spiffe://x.consul/ns/default/dc/dc9/svc/anything")
    assert principal_regex("a.b-c") == r"^spiffe://[^/]+/ns/[^/]+/dc/[^/]+/svc/a\.b\-c$"


def test_l7_intention_on_a_tcp_listener_is_a_deny() -> None:
    l7 = Intention("web", "db", None, (Permission("allow", ADMIN),))
    assert intermediate_form([l7], default_allow=True, is_http=False) == [RBACIntention("web", "deny")]


def test_l7_permissions_lose_precedence_in_order() -> None:
    l7 = Intention("web", "db", None, (Permission("allow", ADMIN), Permission("deny", POST)))
    (rixn,) = intermediate_form([l7], default_allow=True, is_http=True)
    assert rixn.action == L7
    # allow /admin equals the default: dropped, but POST-deny must not catch POST /admin.
    assert rixn.permissions == (RBACPermission("deny", POST, not_matches=(ADMIN,)),)
    rules = rbac_rules([l7], True, True)
    assert list(rules.policies) == ["consul-intentions-layer7-0"]
    post_admin = {"path": "/admin/x", "method": "POST", "headers": {}}
    post_other = {"path": "/other", "method": "POST", "headers": {}}
    assert allowed_by(rules, "web", post_admin) and not allowed_by(rules, "web", post_other)


def test_l7_intention_whose_permissions_all_equal_the_default_needs_no_policy() -> None:
    l7 = Intention("web", "db", None, (Permission("allow", ADMIN),))
    assert intermediate_form([l7], default_allow=True, is_http=True) == []


def test_l7_header_and_method_matchers() -> None:
    match = HTTPMatch(path_exact="/x", methods=("GET", "PUT"),
                      headers=(HeaderMatch("x-debug", present=True), HeaderMatch("x-env", exact="prod", invert=True)))
    rules = rbac_rules([Intention("web", "db", None, (Permission("deny", match),))], True, True)
    perm = rules.policies["consul-intentions-layer7-0"].permissions[0]
    kinds = [r.WhichOneof("rule") for r in perm.and_rules.rules]
    assert kinds == ["url_path", "header", "header", "header"]
    req = {"path": "/x", "method": "PUT", "headers": {"x-debug": "1", "x-env": "dev"}}
    assert not allowed_by(rules, "web", req)
    assert allowed_by(rules, "web", {**req, "method": "POST"})
    assert allowed_by(rules, "web", {**req, "headers": {"x-debug": "1", "x-env": "prod"}})
    assert allowed_by(rules, "web", {**req, "headers": {"x-env": "dev"}})


def test_filter_configs_carry_the_rules() -> None:
    net = network_rbac([A], True)
    assert net.stat_prefix == "connect_authz" and net.rules.action == DENY
    assert http_rbac([A], False).rules.action == ALLOW


# --- property: the Envoy RBAC decides exactly as Consul's precedence order -------------------

NAMES = ("web", "api", "*")
MATCHES = (ADMIN, POST, HTTPMatch(path_exact="/x"), HTTPMatch(headers=(HeaderMatch("x-debug", present=True),)))
REQUESTS = [
    {"path": p, "method": m, "headers": h}
    for p in ("/admin/1", "/x", "/y") for m in ("GET", "POST") for h in ({}, {"x-debug": "1"})
]
action = st.sampled_from(("allow", "deny"))
permission = st.builds(Permission, action, st.sampled_from(MATCHES))


@st.composite
def intention_sets(draw, l7: bool) -> list[Intention]:
    out = []
    for dst in ("db", "*"):
        for src in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=3)):
            perms = tuple(draw(st.lists(permission, min_size=1, max_size=3))) if l7 and draw(st.booleans()) else ()
            out.append(Intention(src, dst, None if perms else draw(action), perms))
    return out


@settings(max_examples=300, deadline=None)
@given(intention_sets(l7=False), st.booleans())
def test_l4_rbac_agrees_with_intention_evaluation(ixns: list[Intention], default_allow: bool) -> None:
    rules = rbac_rules(ixns, default_allow, is_http=False)
    for source in ("web", "api", "other"):
        expected = evaluate(source, "db", ixns, default_allow).allowed
        assert allowed_by(rules, source, {}) == expected, (source, ixns)


@settings(max_examples=300, deadline=None)
@given(intention_sets(l7=True), st.booleans())
def test_l7_rbac_agrees_with_consuls_first_match_order(ixns: list[Intention], default_allow: bool) -> None:
    rules = rbac_rules(ixns, default_allow, is_http=True)
    for source in ("web", "api", "other"):
        for req in REQUESTS:
            expected = consul_l7_decision(source, req, ixns, default_allow)
            assert allowed_by(rules, source, req) == expected, (source, req, ixns)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=40).filter(lambda s: s != "*" and "/" not in s))
def test_every_source_name_gives_a_principal_regex_re2_compiles_and_matches_only_that_name(name: str) -> None:
    # A name like "w€b" once became `w\€b`, an invalid RE2 escape: Envoy NACKed the listener and
    # kept its older policy.
    rx = re2.compile(principal_regex(name))
    assert rx.fullmatch(spiffe(name))
    assert not rx.fullmatch(spiffe(name + "x"))
