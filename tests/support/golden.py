"""Golden files of Envoy resources: tests/golden/<listeners|clusters|endpoints|routes>/<case>.json.

Rewrite them after an intended change with `NOMADMESH_UPDATE_GOLDEN=1 pytest tests/unit` and review the diff.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable

from google.protobuf import json_format
from google.protobuf.message import Message

from nomadmesh.agent.connect.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE
from support.paths import GOLDEN

FOLDER = {LISTENER: "listeners", CLUSTER: "clusters", ENDPOINT: "endpoints", ROUTE: "routes"}


def as_json(msgs: Iterable[Message]) -> str:
    """Messages as stable JSON text: sorted by content, keys sorted, proto field names."""
    ordered = sorted(msgs, key=json_format.MessageToJson)
    return json.dumps([json_format.MessageToDict(m, preserving_proto_field_name=True) for m in ordered],
                      indent=2, sort_keys=True) + "\n"


def assert_golden(type_url: str, case: str, msgs: Iterable[Message]) -> None:
    """The resources equal the golden file (NOMADMESH_UPDATE_GOLDEN=1 rewrites it first)."""
    got = as_json(msgs)
    path = GOLDEN / FOLDER[type_url] / f"{case}.json"
    if os.environ.get("NOMADMESH_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got)
    assert path.exists(), f"{path} missing: run with NOMADMESH_UPDATE_GOLDEN=1 and review it"
    assert got == path.read_text()
