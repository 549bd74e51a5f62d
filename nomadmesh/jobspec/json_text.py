"""`pretty_json(value)`: exactly `json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)`, faster;
`compact_json(value)`: the same without the indent and with `separators=(",", ":")` (a hash's canonical text).

The job JSON `render --format json` writes is this text. Python's json encodes with an indent in
pure Python (its C encoder ignores `indent` before 3.13), about a tenth of a job's render; orjson
writes the same bytes ten times faster for everything a decoded job holds: strings (escapes
included), whole numbers, booleans, null, lists and objects with string keys. Floats are the one
difference (orjson writes 1e-05 as 0.00001), so a value holding one, and anything orjson refuses
(a key that is not a string, an integer beyond 64 bits, a lone surrogate), goes through json.
"""
from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS


def pretty_json(value: Any) -> str:
    if not _holds_float(value):
        try:
            return orjson.dumps(value, option=_OPTIONS).decode()
        except TypeError:  # orjson.JSONEncodeError: json decides (and raises what it raises)
            pass
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def compact_json(value: Any) -> str:
    if not _holds_float(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        except TypeError:
            pass
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_SCALARS = (str, int, bool, type(None))  # no float in them, nothing inside them


def _holds_float(value: Any) -> bool:
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        return isinstance(value, float)
    # A job is mostly strings: only containers and floats are looked into, not every scalar.
    return any(type(item) not in _SCALARS and _holds_float(item) for item in items)
