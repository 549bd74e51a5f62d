"""Consul's validation of a `service-router` config entry, with Consul's error texts. Pure.

The agent stores service-router entries without acting on them, but a stored entry must be one
Consul would have accepted (`ServiceRouterConfigEntry.Validate` in agent/structs): the same HTTP
match rules as intentions, with its own `Route[i] ...` texts. As for intentions, every regex must
also be one Envoy loads (`nomadmesh.mesh.regex`); that rule is ours.

Keys are matched as Consul's decoder matches them: any case, snake_case too (`path_exact`).
"""
from __future__ import annotations

from typing import Any

from nomadmesh.mesh.intention_rules import HTTP_METHODS, go_quote
from nomadmesh.mesh.regex import regex_problem

# Consul's isValidRetryCondition.
RETRY_CONDITIONS = ("5xx", "gateway-error", "reset", "connect-failure", "envoy-ratelimited", "retriable-4xx",
                    "refused-stream", "cancelled", "deadline-exceeded", "internal", "resource-exhausted",
                    "unavailable")


class InvalidRouter(ValueError):
    """The entry breaks one of Consul's rules; the message is Consul's text."""


def _fold(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def _get(obj: Any, key: str) -> Any:
    """`obj[key]` the way Consul's decoder finds it (any case, snake_case); None if absent."""
    if not isinstance(obj, dict):
        return None
    wanted = _fold(key)
    return next((v for k, v in obj.items() if _fold(str(k)) == wanted), None)


def _list(obj: Any, key: str, where: str) -> list[Any]:
    value = _get(obj, key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRouter(f"{where}{key}: must be a list")
    return value


def validate(entry: dict[str, Any]) -> None:
    """Raise InvalidRouter with Consul's message for the first rule `entry` breaks."""
    for i, route in enumerate(_list(entry, "Routes", "")):
        if not isinstance(route, dict):
            raise InvalidRouter(f"Routes[{i}]: must be an object")
        http = _get(_get(route, "Match"), "HTTP")
        eligible_for_rewrite = False
        if http is not None:
            eligible_for_rewrite = _validate_match(i, http)
        destination = _get(route, "Destination")
        if destination is not None:
            if _get(destination, "PrefixRewrite") and not eligible_for_rewrite:
                raise InvalidRouter(f"Route[{i}] cannot make use of PrefixRewrite without configuring either "
                                    "PathExact or PathPrefix")
            for condition in _list(destination, "RetryOn", f"Routes[{i}].Destination."):
                if condition not in RETRY_CONDITIONS:
                    raise InvalidRouter(f"Route[{i}] contains an invalid retry condition: {go_quote(str(condition))}")


def _validate_match(i: int, http: Any) -> bool:
    """Check one route's HTTP match; True if it has PathExact or PathPrefix (PrefixRewrite needs one)."""
    path_parts = 0
    for key in ("PathExact", "PathPrefix"):
        value = _get(http, key)
        if value:
            path_parts += 1
            if not str(value).startswith("/"):
                raise InvalidRouter(f"Route[{i}] {key} doesn't start with '/': {go_quote(str(value))}")
    if _get(http, "PathRegex"):
        path_parts += 1
    if path_parts > 1:
        raise InvalidRouter(f"Route[{i}] should only contain at most one of PathExact, PathPrefix, or PathRegex")
    _check_regex(f"Route[{i}] PathRegex", _get(http, "PathRegex"))
    for j, header in enumerate(_list(http, "Header", f"Routes[{i}].Match.HTTP.")):
        if not _get(header, "Name"):
            raise InvalidRouter(f"Route[{i}] Header[{j}] missing required Name field")
        if sum(1 for k in ("Present", "Exact", "Regex", "Prefix", "Suffix") if _get(header, k)) != 1:
            raise InvalidRouter(f"Route[{i}] Header[{j}] should only contain one of Present, Exact, Prefix, "
                                "Suffix, or Regex")
        _check_regex(f"Route[{i}] Header[{j}] Regex", _get(header, "Regex"))
    for j, param in enumerate(_list(http, "QueryParam", f"Routes[{i}].Match.HTTP.")):
        if not _get(param, "Name"):
            raise InvalidRouter(f"Route[{i}] QueryParam[{j}] missing required Name field")
        if sum(1 for k in ("Present", "Exact", "Regex") if _get(param, k)) != 1:
            raise InvalidRouter(f"Route[{i}] QueryParam[{j}] should only contain one of Present, Exact, or Regex")
        _check_regex(f"Route[{i}] QueryParam[{j}] Regex", _get(param, "Regex"))
    seen: set[str] = set()
    for method in (str(m).upper() for m in _list(http, "Methods", f"Routes[{i}].Match.HTTP.")):
        if method not in HTTP_METHODS:
            raise InvalidRouter(f"Route[{i}] Methods contains an invalid method {go_quote(method)}")
        if method in seen:
            raise InvalidRouter(f"Route[{i}] Methods contains {go_quote(method)} more than once")
        seen.add(method)
    return bool(_get(http, "PathExact") or _get(http, "PathPrefix"))


def _check_regex(where: str, pattern: Any) -> None:
    if pattern:
        problem = regex_problem(str(pattern))
        if problem:
            raise InvalidRouter(f"{where} is not valid: {problem}")
