"""The job JSON's text is json.dumps' (indent 2, sorted keys, no ASCII escaping), byte for byte,
whatever path pretty_json takes (orjson, or json for floats and what orjson refuses)."""
from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from nomadmesh.jobspec.json_text import compact_json, pretty_json

_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text()
            | st.floats(allow_nan=False, allow_infinity=False))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
                       | st.dictionaries(st.text(), inner, max_size=3), max_leaves=10)


def _reference(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@settings(max_examples=150, deadline=None)
@given(_values)
def test_writes_what_json_writes(value: Any) -> None:
    assert pretty_json(value) == _reference(value)
    assert compact_json(value) == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize("value", [
    {"a": [1.0, 1e-05, 2.5e-07, 1e16]},  # orjson would write 0.00001 and 2.5e-7
    {"t": (1, 1e-05)},
    {1: "a non-string key"},
    {"big": 2**64},
    {"s": "\ud800 lone surrogate", "c": "\x00\x1f\x7f\u2028 é 😀 \"\\"},
    {"Job": {"Name": "j", "TaskGroups": [], "Meta": {}}},
])
def test_the_values_orjson_writes_otherwise_go_through_json(value: Any) -> None:
    assert pretty_json(value) == _reference(value)
    assert compact_json(value) == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
