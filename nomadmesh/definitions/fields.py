"""Typed reading of parsed JSON with every problem collected, not just the first. Pure, no I/O.

Why not jsonschema or pydantic: both would still need every error remapped to our wording
(`file: dotted.path: message`, reprs of bad values, did-you-mean for unknown keys), and we build
the frozen model in the same walk. A reader that checks each value where it is converted keeps
the rule and its message next to each other.

`Reader(file)` collects `Problem`s; `Obj(reader, value, path, known)` wraps one JSON object,
reports its unknown keys once, and hands out typed values (`None` when missing or wrong, the
problem already recorded), so callers fall back to model defaults and keep going.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from nomadmesh.durations import DurationError, parse_ns
from nomadmesh.errors import Problem

T = TypeVar("T")

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
# Nomad job/group/service names and Consul service names that must also be DNS labels.
NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NAME_RULE = ("must be lowercase letters, digits and dashes, start with a letter, not end with a dash, "
             "at most 63 characters")


def json_type(value: Any) -> str:
    """The JSON name of a Python value's type, as users see it in their file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def shown(value: Any) -> str:
    """A short rendering of a bad value: repr for strings so quotes, `${` and newlines show."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return json_type(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def got(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        return f"got {json_type(value)}"
    return f"got {json_type(value)} {shown(value)}"


def join(path: str, key: str | int) -> str:
    """Extend a dotted path: `a.b`, `a[0]`, or `a["odd key"]` when the key is not a plain word."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def did_you_mean(key: str, known: Collection[str]) -> str:
    choices = sorted(known)
    close = difflib.get_close_matches(key, choices, n=1) or difflib.get_close_matches(key.lower(), choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; expected one of {', '.join(choices)}"


class Reader:
    """Collects the problems of one file."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []

    def error(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.file, path, message))

    def warning(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.file, path, message, "warning"))

    def name_ok(self, path: str, value: str) -> bool:
        if NAME.match(value):
            return True
        self.error(path, f"{value!r} is not a valid name: {NAME_RULE}")
        return False

    def obj(self, value: Any, path: str, known: Collection[str], unsupported: Collection[str] = ()) -> Obj | None:
        if not isinstance(value, dict):
            self.error(path, f"must be an object, {got(value)}")
            return None
        return Obj(self, value, path, known, unsupported)

    def array(self, value: Any, path: str) -> list[Any] | None:
        if not isinstance(value, list):
            self.error(path, f"must be an array, {got(value)}")
            return None
        return value


class Obj:
    """One JSON object being read. Unknown keys are reported on construction."""

    def __init__(
        self, reader: Reader, data: dict[str, Any], path: str, known: Collection[str], unsupported: Collection[str] = ()
    ):
        self.r, self.data, self.path = reader, data, path
        for key in getattr(data, "duplicates", ()):
            reader.error(join(path, key), "key appears more than once in this object (JSON keeps only the last)")
        for key in data:
            if key in known:
                continue
            if key in unsupported:
                reader.error(join(path, key), "is a Consul key that nomadmesh does not support")
            else:
                reader.error(join(path, key), "unknown key" + did_you_mean(key, known))

    def at(self, key: str) -> str:
        return join(self.path, key)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def _typed(self, key: str, ok: Callable[[Any], bool], what: str, required: bool) -> Any:
        if key not in self.data:
            if required:
                self.r.error(self.at(key), "is required")
            return None
        value = self.data[key]
        if not ok(value):
            self.r.error(self.at(key), f"must be {what}, {got(value)}")
            return None
        return value

    def string(self, key: str, required: bool = False, nonempty: bool = False) -> str | None:
        value = self._typed(key, lambda v: isinstance(v, str), "a string", required)
        if value is not None and nonempty and not value.strip():
            self.r.error(self.at(key), "must not be empty")
            return None
        return value

    def boolean(self, key: str) -> bool | None:
        return self._typed(key, lambda v: isinstance(v, bool), "true or false", False)

    def integer(self, key: str, lo: int | None = None, hi: int | None = None, required: bool = False) -> int | None:
        # bool is a subclass of int in Python, but `true` is not a port number.
        value = self._typed(
            key, lambda v: isinstance(v, int) and not isinstance(v, bool), _int_phrase(lo, hi), required
        )
        if value is None:
            return None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.r.error(self.at(key), f"must be {_int_phrase(lo, hi)}, got {value}")
            return None
        return value

    def choice(self, key: str, choices: tuple[str, ...], required: bool = False) -> str | None:
        value = self.string(key, required)
        if value is not None and value not in choices:
            self.r.error(self.at(key), f"must be one of {', '.join(choices)}, got {shown(value)}")
            return None
        return value

    def duration(self, key: str) -> str | None:
        """A Go duration as Nomad parses it (nomadmesh.durations: "10s", "1.5s", "1m30s"), not negative;
        kept as written, since the job file passes it on to Nomad."""
        value = self.string(key)
        if value is not None and not _non_negative_duration(value):
            self.r.error(self.at(key), f"must be a duration like '10s', '5m' or '1m30s', got {shown(value)}")
            return None
        return value

    def name(self, key: str, required: bool = False) -> str | None:
        value = self.string(key, required)
        return value if value is not None and self.r.name_ok(self.at(key), value) else None

    def strings(self, key: str) -> tuple[str, ...] | None:
        """An array of strings (any content: the renderer escapes it)."""
        if key not in self.data:
            return None
        items = self.r.array(self.data[key], self.at(key))
        if items is None:
            return None
        bad = False
        for i, item in enumerate(items):
            if not isinstance(item, str):
                self.r.error(join(self.at(key), i), f"must be a string, {got(item)}")
                bad = True
        return None if bad else tuple(items)

    def pairs(self, key: str) -> tuple[tuple[str, str], ...] | None:
        """An object of identifier keys to string values (they become HCL attribute names)."""
        if key not in self.data:
            return None
        obj = self.data[key]
        if not isinstance(obj, dict):
            self.r.error(self.at(key), f"must be an object of strings, {got(obj)}")
            return None
        for dup in getattr(obj, "duplicates", ()):
            self.r.error(join(self.at(key), dup),
                         "key appears more than once in this object (JSON keeps only the last)")
        bad = False
        for k, v in obj.items():
            where = join(self.at(key), k)
            if not IDENTIFIER.match(k):
                self.r.error(where, f"key {k!r} must be letters, digits and underscores, not starting with a digit")
                bad = True
            if not isinstance(v, str):
                self.r.error(where, f"must be a string, {got(v)}")
                bad = True
        return None if bad else tuple(sorted(obj.items()))


def _non_negative_duration(text: str) -> bool:
    try:
        return parse_ns(text) >= 0
    except DurationError:
        return False


def _int_phrase(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"an integer from {lo} to {hi}"
    if lo is not None:
        return f"an integer of at least {lo}"
    return "an integer"


def pick(value: T | None, default: T) -> T:
    return default if value is None else value
