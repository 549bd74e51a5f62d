"""Property: whatever JSON-ish junk is in service.json, load_spec returns a Spec or raises SpecError."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from nomadmesh.definitions import load_spec
from nomadmesh.definitions.model import Spec
from nomadmesh.errors import SpecError

KEYS = [
    "service", "nomad", "name", "port", "tags", "meta", "connect", "sidecar_service", "proxy", "upstreams",
    "destination_name", "local_bind_port", "local_bind_address", "datacenter", "check", "checks", "http", "tcp",
    "driver", "command", "args", "work_dir", "image", "env", "count", "resources", "publish", "type", "path",
    "interval", "timeout", "update", "restart", "healthy_deadline", "mode", "cpu", "memory", "id", "address",
]  # fmt: skip
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["a", "b", "raw_exec", "docker", "http", "tcp", "/x", "10s", "1m30s", "127.0.0.1", "", "${x}",
                     "Ü\n\""]),
    st.text(max_size=8),
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=6),
    ),
    max_leaves=40,
)
documents = st.one_of(json_values, st.fixed_dictionaries({"service": json_values, "nomad": json_values}))
texts = st.one_of(documents.map(json.dumps), st.text(max_size=60), documents.map(lambda d: json.dumps(d)[:-1]))


def _check(files: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "services"
        root.mkdir()
        for i, text in enumerate(files.values()):
            (root / f"s{i}").mkdir()
            (root / f"s{i}" / "service.json").write_text(text)
        try:
            outcome: Any = load_spec(root)
        except SpecError as e:
            outcome = e
        if isinstance(outcome, SpecError):  # refused: with errors that say why, never an empty refusal
            assert outcome.problems and all(p.severity == "error" for p in outcome.problems)
        else:
            assert isinstance(outcome, Spec)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from("abc"), texts, min_size=1, max_size=3))
def test_junk_never_raises_anything_but_spec_error(files: dict[str, str]) -> None:
    _check(files)


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({
    "service": st.fixed_dictionaries({"name": st.sampled_from(["a", "b"]), "port": json_values},
                                     optional={"connect": json_values, "checks": json_values, "check": json_values}),
    "nomad": st.fixed_dictionaries({}, optional=dict.fromkeys(
        ["driver", "command", "env", "checks", "update", "restart", "publish", "resources"], json_values)),
}))  # fmt: skip
def test_near_valid_junk_never_raises_anything_but_spec_error(doc: dict[str, Any]) -> None:
    _check({"a": json.dumps(doc)})
