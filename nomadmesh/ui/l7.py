"""L7 rules edited from the topology's edge panel. Pure: form fields and what was read in, permissions out.

An edge `src → dst` is decided by one intention. Rules are added to that intention when it is an
L7 one for this destination (`* → dst` included: its rules then apply to every caller, as the panel
says); otherwise to the exact `src → dst` intention, created if need be, which then decides the edge
(exact names take precedence over wildcards). A new rule is checked by the same code, with the same
messages, as `nomadmesh intent allow|deny --path-prefix …` (`mesh.permission_input`: paths start with
/, regexes load as Envoy's RE2 would, methods and header names are HTTP's); it goes after the
existing rules (the first match decides a request). A rule is removed by its position and its text,
so a form posted from a stale page cannot remove another rule; the last rule is not removed (an L7
intention needs one): delete the intention, or allow or deny the edge as a whole, instead.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nomadmesh.definitions.fields import NAME, NAME_RULE
from nomadmesh.mesh import intentions as ixn
from nomadmesh.mesh.chain_rules import HTTP_LIKE
from nomadmesh.mesh.permission_input import PATH_KEYS, BadPermission, permission

WHERE = "the new rule"
FIELDS = ("action", "path_kind", "path", "header")


class L7EditError(ValueError):
    """An edit that cannot be made; the message says why (nothing is written)."""


@dataclass(frozen=True)
class Target:
    """The intention the panel's L7 rules belong to, and what it is now (None: not written yet)."""

    source: str
    destination: str
    current: ixn.Intention | None

    @property
    def rules(self) -> tuple[ixn.Permission, ...]:
        return self.current.permissions if self.current else ()


def target_of(source: str, destination: str, intentions: Sequence[ixn.Intention], default_allow: bool) -> Target:
    """Where rules for the edge `source → destination` go (see the module's docstring)."""
    deciding = ixn.evaluate(source, destination, intentions, default_allow).intention
    if deciding is not None and deciding.is_l7 and deciding.destination == destination:
        return Target(deciding.source, deciding.destination, deciding)
    exact = next((i for i in intentions if (i.source, i.destination) == (source, destination)), None)
    return Target(source, destination, exact)


def edge_problem(source: str, destination: str) -> str | None:
    """Why the posted edge names no service pair (the CLI's words for a bad name), or None."""
    for field, value in (("source", source), ("destination", destination)):
        if value != ixn.WILDCARD and not NAME.match(value):
            return f"{field}: {value!r} is not a valid service name: {NAME_RULE} (or * for any)"
    if destination == ixn.WILDCARD:  # Consul's rule, said before anything is sent (as the CLI does)
        return "L7 permissions cannot be written for the wildcard destination *"
    return None


def protocol_refusal(destination: str, protocol: str, where: str) -> str | None:
    """Why `destination` cannot have L7 rules (it speaks tcp, say), or None when it can."""
    if protocol in HTTP_LIKE:
        return None
    return (f"{destination} speaks {protocol} ({where}): L7 rules need {', '.join(HTTP_LIKE)}; set its "
            "protocol in service-defaults first")


def rule_from_form(form: Mapping[str, str], methods: Sequence[str]) -> ixn.Permission:
    """The permission the panel's form describes; BadPermission (the CLI's messages) when it cannot be."""
    action = form.get("action", "")
    if action not in ixn.ACTIONS:
        raise BadPermission(f"{WHERE}: action must be allow or deny, not {action!r}")
    kind, path = form.get("path_kind", ""), form.get("path", "")
    if path and kind not in PATH_KEYS:
        raise BadPermission(f"{WHERE}: the path match must be one of {', '.join(PATH_KEYS)}, not {kind!r}")
    header = form.get("header", "").strip()
    raw = permission(action, (kind, path) if path else None, [m for m in methods if m], [header] if header else [],
                     WHERE)
    return ixn.permissions_from_json([raw])[0]


def with_rule(target: Target, rule: ixn.Permission) -> tuple[ixn.Permission, ...]:
    """The target's rules with `rule` tried last; refused when it is there already."""
    if rule in target.rules:
        raise L7EditError(f"{target.source} => {target.destination} already has the rule "
                          f"{ixn.permission_text(rule)}; nothing written")
    return (*target.rules, rule)


def without_rule(target: Target, position: int, text: str) -> tuple[ixn.Permission, ...]:
    """The target's rules without the one at `position` (1-based), which must still read `text`."""
    rules = target.rules
    if not 1 <= position <= len(rules) or ixn.permission_text(rules[position - 1]) != text:
        raise L7EditError(f"{target.source} => {target.destination} no longer has rule {position} {text!r} "
                          "(changed meanwhile); nothing written")
    if len(rules) == 1:
        raise L7EditError(f"{text!r} is the last L7 rule of {target.source} => {target.destination}: delete the "
                          "intention, or allow or deny the edge as a whole, instead")
    return rules[:position - 1] + rules[position:]
