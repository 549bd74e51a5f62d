"""Consul's validation of a `service-intentions` config entry, with Consul's error texts. Pure.

Consul runs these checks (`ServiceIntentionsConfigEntry.Validate` in agent/structs) after decoding
and normalizing an entry (methods upper-cased, Type defaulted to consul) and refuses the write with
the first failure; the HTTP API answers 500 with the bare message. Shapes and types
(`nomadmesh.mesh.intentions.from_config_entry`) are checked before, at decode time.

One rule is ours, not Consul's: every regular expression (`PathRegex`, a header's `Regex`) must be
one Envoy loads (`nomadmesh.mesh.regex`). Consul accepts any string there, Envoy then NACKs the
listener and the proxy keeps its previous, possibly more permissive, policy.
"""
from __future__ import annotations

from typing import Any

from nomadmesh.gotext import quote as go_quote  # Go's %q; the other rule modules import it from here
from nomadmesh.mesh.regex import regex_problem

WILDCARD = "*"
# Consul's isValidHTTPMethod: Go's net/http method constants.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE")
META_VALUE_MAX_LENGTH = 512  # Consul's metaValueMaxLength, also the limit on Description
HEADER_MATCHES = ("Present", "Exact", "Prefix", "Suffix", "Regex")


class InvalidIntentions(ValueError):
    """The entry breaks one of Consul's rules; the message is Consul's text."""


def _wildcard_problem(name: str) -> str | None:
    if name != WILDCARD and WILDCARD in name:
        return "Name: wildcard character '*' cannot be used with partial values"
    return None


def validate(entry: dict[str, Any]) -> None:
    """Raise InvalidIntentions with Consul's message for the first rule `entry` breaks.

    `entry` is already decoded (Go field names, types checked by `from_config_entry`).
    """
    name = entry.get("Name") or ""
    if not name:
        raise InvalidIntentions("Name is required")
    problem = _wildcard_problem(name)
    if problem:
        raise InvalidIntentions(problem)
    dest_is_wild = name == WILDCARD
    sources = entry.get("Sources") or []
    if not sources:
        raise InvalidIntentions("At least one source is required")
    for i, src in enumerate(sources):
        _validate_source(i, src, dest_is_wild)


def _validate_source(i: int, src: dict[str, Any], dest_is_wild: bool) -> None:
    if not src.get("Name"):
        raise InvalidIntentions(f"Sources[{i}].Name is required")
    problem = _wildcard_problem(src["Name"])
    if problem:
        raise InvalidIntentions(f"Sources[{i}].{problem}")
    if len(src.get("Description") or "") > META_VALUE_MAX_LENGTH:
        raise InvalidIntentions(f"Sources[{i}].Description exceeds maximum length {META_VALUE_MAX_LENGTH}")
    permissions = src.get("Permissions") or []
    if permissions and src.get("Action"):
        raise InvalidIntentions(f"Sources[{i}].Action must be omitted if Permissions are specified")
    if dest_is_wild and permissions:
        raise InvalidIntentions(
            f"Sources[{i}].Permissions cannot be specified on intentions with wildcarded destinations")
    if (src.get("Type") or "consul") != "consul":
        raise InvalidIntentions(f"Sources[{i}].Type must be set to 'consul'")
    for j, perm in enumerate(permissions):
        _validate_permission(f"Sources[{i}].Permissions[{j}]", perm)


def validate_permission(where: str, perm: dict[str, Any]) -> None:
    """Consul's rules for one permission of a source (`where` prefixes the message)."""
    _validate_permission(where, perm)


def _validate_permission(where: str, perm: dict[str, Any]) -> None:
    if str(perm.get("Action") or "").lower() not in ("allow", "deny"):
        raise InvalidIntentions(f"{where}.Action must be set to 'allow' or 'deny'")
    http = perm.get("HTTP")
    prefix = f"{where}.HTTP"
    if http is None:  # a pointer in Consul: an empty object is present, and "should not be empty"
        raise InvalidIntentions(f"{prefix} is required")
    path_parts = 0
    for key in ("PathExact", "PathPrefix"):
        value = http.get(key) or ""
        if value:
            path_parts += 1
            if not value.startswith("/"):
                raise InvalidIntentions(f"{prefix}.{key} doesn't start with '/': {go_quote(value)}")
    if http.get("PathRegex"):
        path_parts += 1
    if path_parts > 1:
        raise InvalidIntentions(f"{prefix} should only contain at most one of PathExact, PathPrefix, or PathRegex")
    _check_regex(f"{prefix}.PathRegex", http.get("PathRegex"))
    parts = path_parts
    for k, header in enumerate(http.get("Header") or []):
        if not header.get("Name"):
            raise InvalidIntentions(f"{prefix}.Header[{k}] missing required Name field")
        if any(c in str(header["Name"]) for c in "\r\n\0"):
            # Ours: Envoy's HeaderMatcher refuses these in a name, and NACKs the listener.
            raise InvalidIntentions(f"{prefix}.Header[{k}].Name must not contain CR, LF or NUL")
        if sum(1 for key in HEADER_MATCHES if header.get(key)) != 1:
            raise InvalidIntentions(
                f"{prefix}.Header[{k}] should only contain one of Present, Exact, Prefix, Suffix, or Regex")
        _check_regex(f"{prefix}.Header[{k}].Regex", header.get("Regex"))
        parts += 1
    methods = [str(m).upper() for m in http.get("Methods") or []]  # Consul upper-cases before validating
    seen: set[str] = set()
    for method in methods:
        if method not in HTTP_METHODS:
            raise InvalidIntentions(f"{prefix}.Methods contains an invalid method {go_quote(method)}")
        if method in seen:
            raise InvalidIntentions(f"{prefix}.Methods contains {go_quote(method)} more than once")
        seen.add(method)
    if methods:
        parts += 1
    if parts == 0:
        raise InvalidIntentions(f"{prefix} should not be empty")


def _check_regex(where: str, pattern: Any) -> None:
    if pattern:
        problem = regex_problem(str(pattern))
        if problem:
            raise InvalidIntentions(f"{where} is not valid: {problem}")

