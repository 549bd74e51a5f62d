"""Consul's /v1/txn: up to 64 KV operations applied all together or not at all.

Every operation runs in one state write; the errors of all failed operations are collected and,
if there is any, the whole write is rolled back and Consul's 409 body comes back
(`{"Results": null, "Errors": [{"OpIndex", "What"}]}`); otherwise 200 with `{"Results": [...],
"Errors": null}`. Results carry the entry each operation touched, its Value only for get verbs, as
Consul's state store returns them. The error texts are Consul's.

Only KV operations are served: Node, Service and Check operations (catalog writes through a
transaction) are refused per operation rather than ignored.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from quart import Blueprint, Response

from nomadmesh.agent.consul.sessions import SessionError, kv_entry_fields
from nomadmesh.agent.http.common import HTTPError, current_ctx, json_body, json_response
from nomadmesh.agent.http.consul_kv import KIND, MAX_VALUE_BYTES, entry, validate_key
from nomadmesh.agent.http.parts import consul_parts
from nomadmesh.agent.state import Txn

bp = Blueprint("consul_txn", __name__)

MAX_OPS = 64  # Consul's maxTxnOps
READ_VERBS = frozenset({"get", "get-or-empty", "get-tree", "check-index", "check-session", "check-not-exists"})


class OpFailed(Exception):
    """One operation's failure, in Consul's words; the transaction goes on to report the others."""


class _RollBack(Exception):
    """Raised inside the state write to undo every operation when any failed."""


def _q(text: str) -> str:
    """Go's %q for the keys and names in Consul's messages."""
    return json.dumps(text, ensure_ascii=False)


def _field(op: dict[str, Any], name: str, default: Any = None) -> Any:
    # Consul decodes the body case-insensitively (Go's encoding/json)
    for key, value in op.items():
        if key.lower() == name.lower():
            return value
    return default


def _kv_ops(body: Any) -> list[dict[str, Any] | None]:
    """The body's operations: each KV op's fields (Value decoded), None for non-KV ops."""
    if not isinstance(body, list):
        raise HTTPError(400, "Failed to parse body: json: cannot unmarshal object into Go value of type api.TxnOps")
    if len(body) > MAX_OPS:
        raise HTTPError(413, f"Transaction contains too many operations ({len(body)} > {MAX_OPS})")
    ops: list[dict[str, Any] | None] = []
    for raw in body:
        kv = _field(raw, "KV") if isinstance(raw, dict) else None
        if not isinstance(kv, dict):
            ops.append(None)
            continue
        value = _field(kv, "Value")
        if value is not None:
            if not isinstance(value, str):
                raise HTTPError(400, f"Failed to parse body: unexpected value type: {type(value).__name__}")
            try:
                value = base64.b64decode(value, validate=True)
            except binascii.Error as e:
                raise HTTPError(400, f"Failed to parse body: failed to decode value: {e}") from None
        key = _field(kv, "Key", "") or ""
        if value is not None and len(value) > MAX_VALUE_BYTES:
            raise HTTPError(413, f"Value for key {_q(key)} is too large ({len(value)} > {MAX_VALUE_BYTES} bytes)")
        ops.append({"Verb": _field(kv, "Verb", ""), "Key": key, "Value": value,
                    "Flags": int(_field(kv, "Flags", 0) or 0), "Index": int(_field(kv, "Index", 0) or 0),
                    "Session": _field(kv, "Session", "") or ""})
    return ops


def _stored(op: dict[str, Any]) -> dict[str, Any]:
    value = op["Value"]
    return {"Flags": op["Flags"], "Value": base64.b64encode(value).decode() if value else None}


def _without_value(rec_entry: dict[str, Any]) -> dict[str, Any]:
    return dict(rec_entry, Value=None)


def apply_kv(txn: Txn, op: dict[str, Any]) -> list[dict[str, Any]]:
    """Run one KV operation inside `txn`; returns its results (KV entries) or raises OpFailed."""
    verb, key = op["Verb"], op["Key"]
    validate_key(key, allow_empty=verb in ("get-tree", "delete-tree"))
    current = txn.get(KIND, key)
    sessions = consul_parts().sessions
    if verb in ("get", "get-or-empty"):
        if current is None:
            if verb == "get":
                raise OpFailed(f"key {_q(key)} doesn't exist")
            return [{"LockIndex": 0, "Key": key, "Flags": op["Flags"], "Value": None, "CreateIndex": 0,
                     "ModifyIndex": op["Index"]}]
        return [entry(current)]
    if verb == "get-tree":
        return [entry(r) for r in txn.records(KIND, key)]
    if verb == "check-index":
        if current is None:
            raise OpFailed(f"failed to check index, key {_q(key)} doesn't exist")
        if current.modify_index != op["Index"]:
            raise OpFailed(f"failed index check for key {_q(key)}, current modify index "
                           f"{current.modify_index} != {op['Index']}")
        return [_without_value(entry(current))]
    if verb == "check-session":
        if current is None:
            raise OpFailed(f"failed to check session, key {_q(key)} doesn't exist")
        holder = current.value.get("Session") or ""
        if holder != op["Session"]:
            raise OpFailed(f"failed session check for key {_q(key)}, current session {_q(holder)} != "
                           f"{_q(op['Session'])}")
        return [_without_value(entry(current))]
    if verb == "check-not-exists":
        if current is not None:
            raise OpFailed(f"key {_q(key)} exists")
        return []
    if verb in ("set", "cas"):
        if verb == "cas":
            found = current.modify_index if current else 0
            if found != op["Index"]:
                raise OpFailed(f"failed to set key {_q(key)}, index is stale")
        value = _stored(op)
        if current is not None:  # a plain write keeps the key's lock, as Consul's does
            value.update(kv_entry_fields(current.value))
        return [_without_value(entry(txn.put(KIND, key, value)))]
    if verb in ("lock", "unlock"):
        try:
            done = (sessions.acquire if verb == "lock" else sessions.release)(txn, key, op["Session"], _stored(op))
        except SessionError as e:
            raise OpFailed(str(e)) from None
        if not done:
            raise OpFailed(f"failed to lock key {_q(key)}, lock is already held" if verb == "lock" else
                           f"failed to unlock key {_q(key)}, lock isn't held, or is held by another session")
        rec = txn.get(KIND, key)
        return [_without_value(entry(rec))] if rec else []
    if verb == "delete":
        txn.delete(KIND, key)
        return []
    if verb == "delete-cas":
        if current is not None and current.modify_index != op["Index"]:
            raise OpFailed(f"failed to delete key {_q(key)}, index is stale")
        txn.delete(KIND, key)
        return []
    if verb == "delete-tree":
        txn.delete_prefix(KIND, key)
        return []
    raise OpFailed(f"unknown KV verb {_q(verb)}")


@bp.put("/v1/txn")
def txn() -> Response:
    ops = _kv_ops(json_body())
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    state = current_ctx().state
    try:
        with state.write() as write:
            for i, op in enumerate(ops):
                try:
                    if op is None:
                        raise OpFailed("the dev agent serves only KV operations in a transaction "
                                       "(Node, Service and Check operations are not supported)")
                    results.extend({"KV": kv} for kv in apply_kv(write, op))
                except OpFailed as e:
                    errors.append({"OpIndex": i, "What": str(e)})
            if errors:
                raise _RollBack
    except _RollBack:
        return json_response({"Results": None, "Errors": errors}, status=409)
    resp = json_response({"Results": results, "Errors": None})
    if all(op is not None and op["Verb"] in READ_VERBS for op in ops):
        # Consul's read-only fast path answers with its read metadata (no index: it cannot block)
        resp.headers["X-Consul-KnownLeader"] = "true"
        resp.headers["X-Consul-LastContact"] = "0"
    return resp
