"""Conversions of decoded values to a field's kind: HCL's automatic conversions plus Go durations.

HCL converts between primitives the way Nomad's decoder (cty) does: a number where a string is
wanted becomes its decimal text, "5" where a number is wanted becomes 5, "true" becomes true.
Durations are Go duration strings ("1m30s", "250ms") and become integer nanoseconds.
"""
from __future__ import annotations

import re
from typing import Any

from nomadmesh.durations import DurationError, parse_ns


class ConversionError(ValueError):
    """A value that does not fit the field's kind; the message says what was expected."""


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration (nomadmesh.durations): "1h30m", "2.5s", "-5s", "0" → nanoseconds."""
    try:
        return parse_ns(text.strip())
    except DurationError:
        hint = ' (missing unit, e.g. "10s")' if re.fullmatch(r"[+-]?[\d.]+", text.strip()) else ""
        raise ConversionError(f'invalid duration "{text}"{hint}') from None


def to_str(value: Any) -> str:
    if type(value) is str:  # nearly every value: one check, not four
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    raise ConversionError(f"expected a string, got {_type_name(value)}")


def to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ConversionError("expected a number, got bool")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ConversionError(f"expected a whole number, got {_type_name(value)} {value!r}")


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ConversionError(f"expected a bool, got {_type_name(value)} {value!r}")


def to_duration(value: Any) -> int:
    if isinstance(value, bool):
        raise ConversionError("expected a duration, got bool")
    if isinstance(value, int):
        return value  # already nanoseconds, as in Job JSON
    if isinstance(value, str):
        return parse_duration(value)
    raise ConversionError(f"expected a duration string like \"10s\", got {_type_name(value)}")


def to_strs(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ConversionError(f"expected a list of strings, got {_type_name(value)}")
    return [to_str(v) for v in value]


def to_smap(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConversionError(f"expected a map of strings, got {_type_name(value)}")
    return {str(k): to_str(v) for k, v in value.items()}


def to_hdr(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise ConversionError(f"expected a map of string lists, got {_type_name(value)}")
    return {str(k): to_strs(v) for k, v in value.items()}


CONVERTERS = {"str": to_str, "int": to_int, "bool": to_bool, "dur": to_duration, "strs": to_strs,
              "smap": to_smap, "hdr": to_hdr}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "number", float: "number", str: "string", list: "list",
            dict: "object"}.get(type(value), type(value).__name__)
