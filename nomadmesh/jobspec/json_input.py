"""`from_json(job)`: check a Job dict submitted as JSON against the schema and normalize its keys.

Like Go's encoding/json, field names match case-insensitively (`"id"` is `ID`) and come out
spelled as Nomad spells them. Unlike Nomad, an unknown field is an error rather than ignored, so a
typo cannot silently drop a setting; fields Nomad has that this agent does not implement are
accepted only when empty. Wrong types are errors naming the path (`Job.TaskGroups[0].Count`).
Free-form maps (driver `Config`, proxy `Config`) are taken as they are.
"""
from __future__ import annotations

import copy
from typing import Any

from nomadmesh.jobspec.errors import JobspecError
from nomadmesh.jobspec.schema import OBJECTS, Field


def from_json(job: Any) -> dict[str, Any]:
    """A normalized copy of `job`; raises JobspecError on unknown fields or wrong types."""
    return _object("Job", job, "Job")


def _object(obj: str, value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JobspecError(f"{path}: expected an object, got {_kind(value)}")
    fields = {f.api.lower(): f for f in OBJECTS[obj]}
    out: dict[str, Any] = {}
    for key, item in value.items():
        field = fields.get(str(key).lower())
        if field is None:
            raise JobspecError(f'{path}: unknown field "{key}"')
        if field.api in out:
            raise JobspecError(f'{path}: field "{field.api}" given twice')
        out[field.api] = _value(field, item, f"{path}.{field.api}")
    return out


def _value(field: Field, value: Any, path: str) -> Any:
    if value is None:
        return None
    kind = field.kind
    if kind == "unsupported":
        if value in ({}, [], "", 0, False):
            return copy.deepcopy(value)
        raise JobspecError(f"{path}: not supported by this agent")
    if kind == "str":
        return _check(value, str, path, "a string")
    if kind == "bool":
        return _check(value, bool, path, "a bool")
    if kind in ("int", "dur"):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise JobspecError(f"{path}: expected an integer{' (nanoseconds)' if kind == 'dur' else ''}, "
                               f"got {_kind(value)}")
        return value
    if kind == "strs":
        items = _check(value, list, path, "a list of strings")
        return [_check(v, str, f"{path}[{i}]", "a string") for i, v in enumerate(items)]
    if kind == "smap":
        items = _check(value, dict, path, "an object of strings")
        return {k: _check(v, str, f"{path}[{k}]", "a string") for k, v in items.items()}
    if kind == "hdr":
        items = _check(value, dict, path, "an object of string lists")
        return {k: [_check(x, str, f"{path}[{k}]", "a string") for x in _check(v, list, f"{path}[{k}]", "a list")]
                for k, v in items.items()}
    if kind == "any":
        return copy.deepcopy(_check(value, dict, path, "an object"))
    if kind == "obj":
        return _object(field.obj or "", value, path)
    if kind == "omap":
        items = _check(value, dict, path, "an object of objects")
        return {k: _object(field.obj or "", v, f"{path}[{k}]") for k, v in items.items()}
    items = _check(value, list, path, "a list")
    return [_object(field.obj or "", v, f"{path}[{i}]") for i, v in enumerate(items)]


def _check(value: Any, typ: type, path: str, what: str) -> Any:
    if not isinstance(value, typ) or (typ is not bool and isinstance(value, bool)):
        raise JobspecError(f"{path}: expected {what}, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)
