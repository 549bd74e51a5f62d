"""Declared upstreams against effective intentions: what `nomadmesh mesh check` reports. Pure.

`check_mesh(spec, intentions, default_allow)` evaluates every declared upstream edge the way
Consul does (precedence, wildcards, default policy; see `nomadmesh.mesh.intentions`) and returns
findings, errors first:

    error    upstream-denied   a declared upstream would be refused (by an intention or the default)
    warning  unused-allow      an allow intention that decides no declared upstream
    warning  hidden-deny       a deny overridden by a *less specific* allow (Consul's precedence trap)
    info     per-request       a declared upstream decided by an L7 intention (the proxy decides per request)

Why "less specific": precedence ranks `* => tax` (8) above `invoice => *` (6), so

    invoice => *    deny     "invoice may call nothing"
    *       => tax  allow    "anyone may call tax"

lets invoice call tax; the deny silently stops applying to tax. That is reported. The everyday
allow-list pattern, `* => tax deny` with `order => tax allow`, is an exception *more* specific
than the deny on every side: intended, not reported.

Which names are judged: the services in the folder, their upstreams (externals included) and the
exact names the intentions mention. An allow is judged unused only when both of its names are
in the folder's scope (a service, an upstream, or `*`): an allow for callers this folder does not
describe (an ingress, another team's service) says nothing about this folder.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import permutations

from nomadmesh.definitions.model import Spec
from nomadmesh.mesh.intentions import WILDCARD, Intention, evaluate, sort_by_precedence

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" | "warning" | "info"
    code: str  # "upstream-denied" | "unused-allow" | "hidden-deny" | "per-request"
    source: str
    destination: str
    message: str
    rule: str | None = None  # the deciding or offending intention, "src => dst", or "default policy"

    def to_json(self) -> dict[str, str | None]:
        return {"severity": self.severity, "code": self.code, "source": self.source,
                "destination": self.destination, "rule": self.rule, "message": self.message}


def _rule(i: Intention) -> str:
    return f"{i.source} => {i.destination}"


def _edges(spec: Spec) -> list[tuple[str, str, str]]:
    """(source, destination, definition file) of every declared upstream, sorted, without duplicates."""
    seen: dict[tuple[str, str], str] = {}
    for s in spec.services:
        for u in s.upstreams:
            seen.setdefault((s.name, u.destination_name), s.source)
    return sorted((src, dst, where) for (src, dst), where in seen.items())


def _denied(src: str, dst: str, where: str, intentions: list[Intention], default_allow: bool) -> Finding | None:
    d = evaluate(src, dst, intentions, default_allow)
    if d.intention is not None and d.intention.is_l7:
        return Finding("info", "per-request", src, dst,
                       f"{src} -> {dst} is decided per request by the L7 intention {_rule(d.intention)}",
                       _rule(d.intention))
    if d.allowed:
        return None
    if d.intention is None:
        why = "the default policy (deny); add an allow intention"
        rule = "default policy"
    else:
        rule = _rule(d.intention)
        wildcard = WILDCARD in (d.intention.source, d.intention.destination)
        why = f"the {'wildcard ' if wildcard else ''}intention {rule} (deny)"
    return Finding("error", "upstream-denied", src, dst,
                   f"{src} declares {dst} as an upstream ({where}) but {why} denies it", rule)


def _is_more_specific_somewhere(deny: Intention, allow: Intention) -> bool:
    """True when `deny` names a service exactly where `allow` has the wildcard."""
    return (deny.source != WILDCARD and allow.source == WILDCARD) or (
        deny.destination != WILDCARD and allow.destination == WILDCARD)


def _hidden_denies(names: list[str], intentions: list[Intention], default_allow: bool) -> list[Finding]:
    out = []
    for deny in intentions:
        if deny.action != "deny" or deny.is_l7:
            continue
        by_allow: dict[Intention, list[str]] = {}
        for src, dst in permutations(names, 2):
            if not deny.matches(src, dst):
                continue
            winner = evaluate(src, dst, intentions, default_allow).intention
            if winner is None or winner == deny or winner.action != "allow":
                continue
            if _is_more_specific_somewhere(deny, winner):
                by_allow.setdefault(winner, []).append(f"{src} -> {dst}")
        for allow, pairs in by_allow.items():
            out.append(Finding(
                "warning", "hidden-deny", deny.source, deny.destination,
                f"the deny {_rule(deny)} does not apply to {', '.join(pairs)}: the wildcard allow "
                f"{_rule(allow)} has higher precedence ({allow.precedence} > {deny.precedence})",
                _rule(deny)))
    return out


def _unused_allows(
    edges: list[tuple[str, str, str]], scope: set[str], intentions: list[Intention], default_allow: bool
) -> list[Finding]:
    deciding = {evaluate(s, d, intentions, default_allow).intention for s, d, _ in edges}
    out = []
    for i in intentions:
        if i.action != "allow" or i.is_l7 or i in deciding:
            continue
        if not {i.source, i.destination} <= scope | {WILDCARD}:
            continue
        out.append(Finding("warning", "unused-allow", i.source, i.destination,
                           f"the allow {_rule(i)} decides no declared upstream", _rule(i)))
    return out


def check_mesh(spec: Spec, intentions: Iterable[Intention], default_allow: bool) -> list[Finding]:
    """Every finding for this folder against these intentions, errors first, then by names."""
    return check_edges(_edges(spec), {s.name for s in spec.services}, intentions, default_allow)


def check_edges(edges: list[tuple[str, str, str]], services: set[str], intentions: Iterable[Intention],
                default_allow: bool) -> list[Finding]:
    """`check_mesh` for declared upstreams however they were read: (source, destination, where it is
    declared) for each, and the services they belong to (the web UI passes the catalog's sidecars)."""
    ordered = sort_by_precedence(intentions)
    edges = sorted(set(edges))
    scope = services | {d for _, d, _ in edges}
    names = sorted(scope | {n for i in ordered for n in (i.source, i.destination) if n != WILDCARD})
    findings = [f for s, d, where in edges if (f := _denied(s, d, where, ordered, default_allow))]
    findings += _unused_allows(edges, scope, ordered, default_allow)
    findings += _hidden_denies(names, ordered, default_allow)
    return sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), f.code, f.source, f.destination))


def verdicts(spec: Spec, intentions: Iterable[Intention], default_allow: bool) -> dict[tuple[str, str], str]:
    """(source, destination) of each declared upstream -> "allow", "deny" or "per-request" (L7)."""
    ordered = sort_by_precedence(intentions)
    out = {}
    for src, dst, _ in _edges(spec):
        d = evaluate(src, dst, ordered, default_allow)
        out[(src, dst)] = "per-request" if d.intention is not None and d.intention.is_l7 else (
            "allow" if d.allowed else "deny")
    return out
