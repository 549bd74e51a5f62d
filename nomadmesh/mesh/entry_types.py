"""Type checks of discovery-chain config entries (service-resolver, service-splitter) as Consul's
decoder makes them. Pure.

Consul decodes a PUT /v1/config body with mapstructure (weakly typed: "90" is a fine float) and
answers 400 `Request decoding failed: ...` when a value cannot become the Go field's type; the
texts here follow mapstructure's (`'Splits[0].Weight' expected type 'float32', got unconvertible
type 'string', value: 'x'`). Validate rules (500) live in resolver_rules / splitter_rules.
"""
from __future__ import annotations

from typing import Any

from nomadmesh.durations import DurationError, go_duration, parse_ns

_GO_TYPES = {str: "string", bool: "bool", int: "int", float: "float64", list: "slice", dict: "map"}


class Undecodable(ValueError):
    """The body cannot be decoded into Consul's struct; the message is the whole 400 text."""


def _shown(value: Any) -> str:
    return _GO_TYPES.get(type(value), "interface")


def fail(where: str, want: str, value: Any) -> Undecodable:
    return Undecodable(f"Request decoding failed: '{where}' expected type '{want}', got unconvertible type "
                       f"'{_shown(value)}', value: '{value}'")


def string(entry: dict[str, Any], key: str, where: str) -> str:
    """A string field ("" when absent); numbers and bools become strings as mapstructure's weak mode does."""
    value = entry.get(key)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise fail(f"{where}{key}", "string", value)
    return value


def boolean(entry: dict[str, Any], key: str, where: str) -> bool:
    value = entry.get(key)
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str) and value.lower() in ("1", "t", "true", "0", "f", "false", ""):
        return value.lower() in ("1", "t", "true")
    raise fail(f"{where}{key}", "bool", value)


def number(entry: dict[str, Any], key: str, where: str) -> float:
    value = entry.get(key)
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value) if value else 0.0
        except ValueError:
            pass
    raise fail(f"{where}{key}", "float32", value)


def mapping(entry: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = entry.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(f"{where}{key}", "map", value)
    return value


def items(entry: dict[str, Any], key: str, where: str) -> list[Any]:
    value = entry.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise fail(f"{where}{key}", "slice", value)
    return value


def obj(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(where, "struct", value)
    return value


def duration(entry: dict[str, Any], key: str) -> int:
    """A time.Duration field: a Go duration string (Consul's UnmarshalJSON) or nanoseconds; 0 when absent."""
    value = entry.get(key)
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise fail(key, "time.Duration", value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, str):
        raise fail(key, "time.Duration", value)
    try:
        return parse_ns(value)
    except DurationError as e:
        raise Undecodable(f"Request decoding failed: {e}") from None


def duration_text(ns: int) -> str | None:
    """How Consul writes a duration back (time.Duration.String()), None when zero (omitted)."""
    return go_duration(ns) if ns else None
