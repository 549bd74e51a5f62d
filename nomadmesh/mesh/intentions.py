"""Intentions: who may call whom, as Consul evaluates them. Pure functions, no I/O.

Consul stores intentions as `service-intentions` config entries, one entry per destination, each
with a list of sources. We flatten an entry into `Intention` values (one per source) and evaluate
them the way Consul does (agent/structs/intention.go):

* precedence of a (source, destination) pair: exact→exact 9, *→exact 8, exact→* 6, *→* 5;
* intentions are tried from the highest precedence down and the first match decides;
* with no match, the default policy decides (allow in dev mode, or deny for zero trust);
* an intention with HTTP `Permissions` (L7) cannot be decided from names alone: the
  `/v1/connect/intentions/check` endpoint reports it as a deny, the proxy enforces it per request.

Worked example, default allow, intentions `web → db: deny` (precedence 9) and `* → db: allow` (8):
`evaluate("web", "db")` tries `web → db` first and denies; `evaluate("api", "db")` falls through to
`* → db` and allows; `evaluate("api", "cache")` matches nothing and takes the default (allow).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

WILDCARD = "*"
ACTIONS = ("allow", "deny")
KIND = "service-intentions"


@dataclass(frozen=True)
class HeaderMatch:
    name: str
    present: bool = False
    exact: str | None = None
    prefix: str | None = None
    suffix: str | None = None
    regex: str | None = None
    invert: bool = False


@dataclass(frozen=True)
class HTTPMatch:
    path_exact: str | None = None
    path_prefix: str | None = None
    path_regex: str | None = None
    methods: tuple[str, ...] = ()
    headers: tuple[HeaderMatch, ...] = ()


@dataclass(frozen=True)
class Permission:
    """An L7 rule: the action applies to requests matching `http`."""

    action: str
    http: HTTPMatch = field(default_factory=HTTPMatch)


@dataclass(frozen=True)
class Intention:
    source: str
    destination: str
    action: str | None  # "allow" | "deny"; None when `permissions` decide (L7)
    permissions: tuple[Permission, ...] = ()
    description: str = ""

    @property
    def precedence(self) -> int:
        return precedence(self.source, self.destination)

    @property
    def is_l7(self) -> bool:
        return bool(self.permissions)

    def matches(self, source: str, destination: str) -> bool:
        return self.source in (WILDCARD, source) and self.destination in (WILDCARD, destination)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    intention: Intention | None  # None: the default policy decided
    reason: str


def precedence(source: str, destination: str) -> int:
    """Consul's precedence for a (source, destination) pair of names."""
    if destination == WILDCARD:
        return 5 if source == WILDCARD else 6
    return 8 if source == WILDCARD else 9


def sort_by_precedence(intentions: Iterable[Intention]) -> list[Intention]:
    """Highest precedence first; ties broken by names so the order is stable."""
    return sorted(intentions, key=lambda i: (-i.precedence, i.source, i.destination))


def evaluate(
    source: str, destination: str, intentions: Iterable[Intention], default_allow: bool
) -> Decision:
    """Decide whether `source` may call `destination` (L7 intentions count as deny)."""
    for intention in sort_by_precedence(intentions):
        if not intention.matches(source, destination):
            continue
        rule = f"{intention.source} => {intention.destination}"
        if intention.is_l7:
            return Decision(False, intention, f"{rule} has L7 permissions (evaluated per request)")
        return Decision(intention.action == "allow", intention, f"{rule} ({intention.action})")
    policy = "allow" if default_allow else "deny"
    return Decision(default_allow, None, f"default policy ({policy})")


def match(intentions: Iterable[Intention], by: str, name: str) -> list[Intention]:
    """Consul's /match: intentions that apply to `name` as source or destination, by precedence."""
    if by not in ("source", "destination"):
        raise ValueError(f"by must be source or destination, not {by!r}")
    picked = [
        i for i in intentions if getattr(i, by) in (WILDCARD, name)
    ]
    return sort_by_precedence(picked)


# --- config entries <-> Intention -------------------------------------------------------------


class IntentionError(ValueError):
    """A service-intentions config entry is malformed; the message names the field."""


def _str(obj: dict[str, Any], key: str, where: str, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise IntentionError(f"{where}.{key}: required")
        return None
    if not isinstance(value, str):
        raise IntentionError(f"{where}.{key}: must be a string")
    return value


def _http_match(raw: Any, where: str) -> HTTPMatch:
    if raw is None:
        return HTTPMatch()
    if not isinstance(raw, dict):
        raise IntentionError(f"{where}: must be an object")
    paths = [k for k in ("PathExact", "PathPrefix", "PathRegex") if raw.get(k) is not None]
    if len(paths) > 1:
        raise IntentionError(f"{where}: at most one of PathExact, PathPrefix, PathRegex")
    methods = raw.get("Methods") or []
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        raise IntentionError(f"{where}.Methods: must be a list of strings")
    headers = []
    for j, h in enumerate(raw.get("Header") or []):
        hw = f"{where}.Header[{j}]"
        if not isinstance(h, dict):
            raise IntentionError(f"{hw}: must be an object")
        headers.append(
            HeaderMatch(
                name=_str(h, "Name", hw, required=True) or "",
                present=bool(h.get("Present", False)),
                exact=_str(h, "Exact", hw),
                prefix=_str(h, "Prefix", hw),
                suffix=_str(h, "Suffix", hw),
                regex=_str(h, "Regex", hw),
                invert=bool(h.get("Invert", False)),
            )
        )
    return HTTPMatch(
        path_exact=_str(raw, "PathExact", where),
        path_prefix=_str(raw, "PathPrefix", where),
        path_regex=_str(raw, "PathRegex", where),
        methods=tuple(m.upper() for m in methods),
        headers=tuple(headers),
    )


def _action(value: Any, where: str) -> str:
    if not isinstance(value, str) or value.lower() not in ACTIONS:
        raise IntentionError(f"{where}: must be allow or deny, not {value!r}")
    return value.lower()


def permissions_from_json(raw: list[Any], where: str = "Permissions") -> tuple[Permission, ...]:
    """A source's `Permissions` list (Consul's JSON shape) as Permission values, methods upper-cased."""
    return tuple(
        Permission(
            action=_action(p.get("Action") if isinstance(p, dict) else None, f"{where}[{j}].Action"),
            http=_http_match(p.get("HTTP") if isinstance(p, dict) else None, f"{where}[{j}].HTTP"),
        )
        for j, p in enumerate(raw)
    )


def from_config_entry(entry: dict[str, Any]) -> list[Intention]:
    """Flatten a `service-intentions` config entry into one Intention per source."""
    if entry.get("Kind") != KIND:
        raise IntentionError(f"Kind: must be {KIND!r}")
    destination = _str(entry, "Name", "entry", required=True) or ""
    sources = entry.get("Sources") or []
    if not isinstance(sources, list):
        raise IntentionError("Sources: must be a list")
    seen: set[str] = set()
    out = []
    for i, src in enumerate(sources):
        where = f"Sources[{i}]"
        if not isinstance(src, dict):
            raise IntentionError(f"{where}: must be an object")
        name = _str(src, "Name", where, required=True) or ""
        if name in seen:
            raise IntentionError(f"{where}.Name: source {name!r} is listed twice")
        seen.add(name)
        perms_raw = src.get("Permissions") or []
        if not isinstance(perms_raw, list):
            raise IntentionError(f"{where}.Permissions: must be a list")
        if src.get("Action") is not None and perms_raw:
            raise IntentionError(f"{where}: Action and Permissions are mutually exclusive")
        permissions = permissions_from_json(perms_raw, f"{where}.Permissions")
        action = None if permissions else _action(src.get("Action"), f"{where}.Action")
        out.append(
            Intention(
                source=name,
                destination=destination,
                action=action,
                permissions=permissions,
                description=_str(src, "Description", where) or "",
            )
        )
    return out


def _http_to_json(m: HTTPMatch) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (("PathExact", m.path_exact), ("PathPrefix", m.path_prefix),
                       ("PathRegex", m.path_regex)):
        if value is not None:
            out[key] = value
    if m.methods:
        out["Methods"] = list(m.methods)
    if m.headers:
        out["Header"] = [
            {k: v for k, v in (("Name", h.name), ("Present", h.present or None), ("Exact", h.exact),
                               ("Prefix", h.prefix), ("Suffix", h.suffix), ("Regex", h.regex),
                               ("Invert", h.invert or None)) if v is not None}
            for h in m.headers
        ]
    return out


def permissions_to_json(permissions: Iterable[Permission]) -> list[dict[str, Any]]:
    """Permission values in Consul's JSON shape (a source's `Permissions`)."""
    return [{"Action": p.action, "HTTP": _http_to_json(p.http)} for p in permissions]


def permission_text(p: Permission) -> str:
    """One line for a person: `allow PathPrefix=/public Methods=GET,HEAD Header[X-Team]=blue`."""
    parts = [p.action]
    for key, value in (("PathExact", p.http.path_exact), ("PathPrefix", p.http.path_prefix),
                       ("PathRegex", p.http.path_regex)):
        if value is not None:
            parts.append(f"{key}={value}")
    if p.http.methods:
        parts.append(f"Methods={','.join(p.http.methods)}")
    for h in p.http.headers:
        how = next(((k, v) for k, v in (("", h.exact), ("prefix ", h.prefix), ("suffix ", h.suffix),
                                        ("regex ", h.regex)) if v is not None), None)
        shown = f"Header[{h.name}]" + (f"={how[0]}{how[1]}" if how else " present")
        parts.append(("not " if h.invert else "") + shown)
    return " ".join(parts)


def source_to_json(intention: Intention) -> dict[str, Any]:
    """One entry of a config entry's `Sources`, as Consul returns it (with read-only Precedence)."""
    out: dict[str, Any] = {"Name": intention.source, "Namespace": "default", "Type": "consul",
                           "Precedence": intention.precedence}
    if intention.permissions:
        out["Permissions"] = permissions_to_json(intention.permissions)
    else:
        out["Action"] = intention.action
    if intention.description:
        out["Description"] = intention.description
    return out


def upsert_source(entry: dict[str, Any] | None, destination: str, source: dict[str, Any]) -> dict[str, Any]:
    """A copy of `entry` (or a new one) with `source` added or replacing the same-named source.

    Other sources, and any fields we do not know, are kept: several tools may write one entry.
    """
    base: dict[str, Any] = dict(entry) if entry else {"Kind": KIND, "Name": destination, "Sources": []}
    sources = [s for s in base.get("Sources") or [] if s.get("Name") != source["Name"]]
    sources.append(source)
    base["Sources"] = sorted(sources, key=lambda s: (-precedence(s["Name"], destination), s["Name"]))
    return base


def remove_source(entry: dict[str, Any], source_name: str) -> dict[str, Any] | None:
    """A copy of `entry` without `source_name`; None when no sources are left (delete the entry)."""
    sources = [s for s in entry.get("Sources") or [] if s.get("Name") != source_name]
    if not sources:
        return None
    return {**entry, "Sources": sources}
