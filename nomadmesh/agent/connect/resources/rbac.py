"""Intentions → Envoy RBAC, the way Consul's agent/xds/rbac.go does it. Pure functions.

Two steps. First the intentions for this destination become a small intermediate form
(`RBACIntention`), with precedence removed so that the rules no longer depend on order:

1. sort by precedence, highest first (exact→exact 9, *→exact 8, exact→* 6, *→* 5);
2. walking from the lowest up, every lower intention whose source overlaps a higher one's source
   gets `AND NOT <higher source>` (it must not decide for a caller a higher intention decides for);
3. intentions whose action equals the default policy are dropped (after they have been negated
   into the lower ones): the default already does what they say.

Then the survivors become one Envoy RBAC whose action is the opposite of the default: default
allow → action DENY listing who is denied; default deny → action ALLOW listing who is allowed (an
ALLOW RBAC with no policies denies everything). L4 intentions share one policy
`consul-intentions-layer4`; each L7 intention (HTTP `Permissions`) is its own policy
`consul-intentions-layer7-<i>` whose permissions went through the same precedence removal.

Worked example, destination db, default allow, intentions:

    A  web → db   deny    (9)
    B  api → db   allow   (9)
    C  *   → db   deny    (8)

Sorted (equal precedence by name): B, A, C. Walking up: C gets NOT web (from A) and NOT api
(from B); A stays; B equals the default (allow) and is dropped. Result, action DENY, policy
consul-intentions-layer4 with principals [web, (* AND NOT web AND NOT api)]: web is denied by A,
every other caller except api is denied by C, api matches nothing and the default lets it in,
exactly as precedence says.

With default deny the same intentions give action ALLOW with principals [api]: A and C equal the
default and vanish (C after negating A and B; A's negation only matters to C, which is gone).

Principals match the caller's SPIFFE ID (`authenticated.principal_name`, the URI SAN):
`^spiffe://[^/]+/ns/[^/]+/dc/[^/]+/svc/<name>$`; `*` becomes `[^/]+`. Like Consul, neither the
trust domain (the TLS layer already checked the CA) nor the datacenter is matched.
"""
from __future__ import annotations

import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.route.v3 import route_components_pb2 as route_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as net_rbac_pb2
from envoy.type.matcher.v3 import path_pb2, regex_pb2, string_pb2

from nomadmesh.mesh.intentions import WILDCARD, HTTPMatch, Intention, sort_by_precedence

L7 = "l7"  # action of an intention decided by its HTTP permissions
STAT_PREFIX = "connect_authz"


@dataclass(frozen=True)
class RBACPermission:
    action: str  # "allow" | "deny"
    match: HTTPMatch
    not_matches: tuple[HTTPMatch, ...] = ()  # higher-precedence permissions of the same source


@dataclass(frozen=True)
class RBACIntention:
    source: str
    action: str  # "allow" | "deny" | L7
    permissions: tuple[RBACPermission, ...] = ()
    not_sources: tuple[str, ...] = ()  # higher-precedence sources this one must not decide for


def _sources_overlap(higher: str, lower: str) -> bool:
    """True if some caller matches both sources.

    Consul's ixnSourceMatches only negates when the lower source covers the higher one
    (`web` under `*`). We negate on any overlap, which also shadows `web → * allow` (6) under
    `* → db deny` (8) for web, as intention evaluation (and `consul intention check`) decides.
    """
    return WILDCARD in (higher, lower) or lower == higher


class _Decided(Protocol):
    """What precedence removal needs of an item: the action it decides."""

    @property
    def action(self) -> str: ...


_D = TypeVar("_D", bound=_Decided)


def _remove_precedence(items: list[_D], covers: Callable[[_D, _D], bool], default: str,
                       negate: Callable[[_D, _D], _D]) -> list[_D]:
    """Consul's removeSourcePrecedence / removePermissionPrecedence, without mutation."""
    skip = [False] * len(items)
    for i in range(len(items) - 1, -1, -1):
        for j in range(i + 1, len(items)):
            if not skip[j] and covers(items[i], items[j]):
                items[j] = negate(items[j], items[i])
        if items[i].action == default:
            skip[i] = True
    return [item for item, s in zip(items, skip, strict=True) if not s]


def intermediate_form(
    intentions: Iterable[Intention], default_allow: bool, is_http: bool
) -> list[RBACIntention]:
    """Intentions (for one destination) → precedence-free RBACIntentions that differ from the default."""
    default = "allow" if default_allow else "deny"
    items: list[RBACIntention] = []
    for ixn in sort_by_precedence(intentions):
        if ixn.is_l7:
            if is_http:
                perms = tuple(RBACPermission(p.action, p.http) for p in ixn.permissions)
                items.append(RBACIntention(ixn.source, L7, perms))
            else:
                # An L7 intention cannot be enforced on a TCP listener: treat it as deny, like Consul.
                items.append(RBACIntention(ixn.source, "deny"))
        else:
            items.append(RBACIntention(ixn.source, ixn.action or "deny"))
    kept = _remove_precedence(
        items,
        lambda hi, lo: _sources_overlap(hi.source, lo.source),
        default,
        lambda lo, hi: replace(lo, not_sources=(*lo.not_sources, hi.source)),
    )
    out = []
    for rixn in kept:
        if rixn.action == L7:
            kept_perms = _remove_precedence(
                list(rixn.permissions),
                lambda hi, lo: True,  # every later permission of one source is lower precedence
                default,
                lambda lo, hi: replace(lo, not_matches=(*lo.not_matches, hi.match)),
            )
            if not kept_perms:
                # Every permission says what the default says: no policy needed (and Envoy
                # rejects a policy without permissions).
                continue
            rixn = replace(rixn, permissions=tuple(kept_perms))
        out.append(rixn)
    return out


# --- intermediate form → Envoy ---------------------------------------------------------------


def _re2_escape(name: str) -> str:
    """`name` as an RE2 literal, the way RE2::QuoteMeta does it: ASCII punctuation gets a
    backslash, other ASCII (controls, space) a hex escape, non-ASCII stays as it is. A backslash
    before a non-ASCII symbol (`\\€`) is an invalid escape: Envoy would NACK the whole listener."""
    out = []
    for c in name:
        if not c.isascii() or c.isalnum() or c == "_":
            out.append(c)
        elif c in string.punctuation:
            out.append("\\" + c)
        else:
            out.append(f"\\x{{{ord(c):02x}}}")
    return "".join(out)


def principal_regex(source: str) -> str:
    name = "[^/]+" if source == WILDCARD else _re2_escape(source)
    return f"^spiffe://[^/]+/ns/[^/]+/dc/[^/]+/svc/{name}$"


def _principal(source: str) -> rbac_pb2.Principal:
    matcher = string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=principal_regex(source)))
    return rbac_pb2.Principal(authenticated=rbac_pb2.Principal.Authenticated(principal_name=matcher))


def _and_principals(ids: list[rbac_pb2.Principal]) -> rbac_pb2.Principal:
    if len(ids) == 1:
        return ids[0]
    return rbac_pb2.Principal(and_ids=rbac_pb2.Principal.Set(ids=ids))


def computed_principal(rixn: RBACIntention) -> rbac_pb2.Principal:
    parts = [_principal(rixn.source)]
    parts += [rbac_pb2.Principal(not_id=_principal(s)) for s in rixn.not_sources]
    return _and_principals(parts)


def _and_permissions(rules: list[rbac_pb2.Permission]) -> rbac_pb2.Permission:
    if not rules:
        return rbac_pb2.Permission(any=True)
    if len(rules) == 1:
        return rules[0]
    return rbac_pb2.Permission(and_rules=rbac_pb2.Permission.Set(rules=rules))


def _string(exact: str | None = None, prefix: str | None = None, suffix: str | None = None,
            regex: str | None = None) -> string_pb2.StringMatcher:
    if exact is not None:
        return string_pb2.StringMatcher(exact=exact)
    if prefix is not None:
        return string_pb2.StringMatcher(prefix=prefix)
    if suffix is not None:
        return string_pb2.StringMatcher(suffix=suffix)
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=regex or ""))


def http_permission(match: HTTPMatch) -> rbac_pb2.Permission:
    """One HTTPMatch (path, headers, methods; all must hold) → an Envoy Permission."""
    parts: list[rbac_pb2.Permission] = []
    path = None
    if match.path_exact is not None:
        path = _string(exact=match.path_exact)
    elif match.path_prefix is not None:
        path = _string(prefix=match.path_prefix)
    elif match.path_regex is not None:
        path = _string(regex=match.path_regex)
    if path is not None:
        parts.append(rbac_pb2.Permission(url_path=path_pb2.PathMatcher(path=path)))
    for h in match.headers:
        hm = route_pb2.HeaderMatcher(name=h.name, invert_match=h.invert)
        if h.exact is not None:
            hm.string_match.CopyFrom(_string(exact=h.exact))
        elif h.regex is not None:
            hm.string_match.CopyFrom(_string(regex=h.regex))
        elif h.prefix is not None:
            hm.string_match.CopyFrom(_string(prefix=h.prefix))
        elif h.suffix is not None:
            hm.string_match.CopyFrom(_string(suffix=h.suffix))
        elif h.present:
            hm.present_match = True
        else:
            continue  # nothing to match on: Consul skips it too
        parts.append(rbac_pb2.Permission(header=hm))
    if match.methods:
        hm = route_pb2.HeaderMatcher(name=":method", string_match=_string(regex="|".join(match.methods)))
        parts.append(rbac_pb2.Permission(header=hm))
    return _and_permissions(parts)


def computed_permission(perm: RBACPermission) -> rbac_pb2.Permission:
    parts = [http_permission(perm.match)]
    parts += [rbac_pb2.Permission(not_rule=http_permission(m)) for m in perm.not_matches]
    return _and_permissions(parts)


def rbac_rules(intentions: Iterable[Intention], default_allow: bool, is_http: bool) -> rbac_pb2.RBAC:
    action = rbac_pb2.RBAC.DENY if default_allow else rbac_pb2.RBAC.ALLOW
    rules = rbac_pb2.RBAC(action=action)
    layer4: list[rbac_pb2.Principal] = []
    for i, rixn in enumerate(intermediate_form(intentions, default_allow, is_http)):
        if rixn.action == L7:
            rules.policies[f"consul-intentions-layer7-{i}"].CopyFrom(rbac_pb2.Policy(
                principals=[computed_principal(rixn)],
                permissions=[computed_permission(p) for p in rixn.permissions],
            ))
        else:
            layer4.append(computed_principal(rixn))
    if layer4:
        rules.policies["consul-intentions-layer4"].CopyFrom(
            rbac_pb2.Policy(principals=layer4, permissions=[rbac_pb2.Permission(any=True)])
        )
    return rules


def network_rbac(intentions: Iterable[Intention], default_allow: bool) -> net_rbac_pb2.RBAC:
    """The `envoy.filters.network.rbac` config for a TCP public listener."""
    return net_rbac_pb2.RBAC(rules=rbac_rules(intentions, default_allow, is_http=False),
                             stat_prefix=STAT_PREFIX)


def http_rbac(intentions: Iterable[Intention], default_allow: bool) -> http_rbac_pb2.RBAC:
    """The `envoy.filters.http.rbac` config for an HTTP public listener."""
    return http_rbac_pb2.RBAC(rules=rbac_rules(intentions, default_allow, is_http=True))
