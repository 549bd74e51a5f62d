"""Consul's KV store: /v1/kv/<key> with get (recurse, keys, separator, raw), put (cas, flags) and
delete (recurse, cas), stored as kind `kv` (value = {Flags, Value base64, LockIndex, Session}).
`?acquire=<session>` / `?release=<session>` take and give back a key's lock (consul.sessions).

Unlike Consul, which treats keys as opaque, a key with a `.` or `..` segment or a leading `/` is
refused (400): other tools map keys onto paths, and such a key could climb out of its prefix.
Values are limited to 512 KiB, Consul's default `kv_max_value_size`.
"""
from __future__ import annotations

import base64
from typing import Any

from quart import Blueprint, Response, request

from nomadmesh.agent.consul.sessions import SessionError, kv_entry_fields
from nomadmesh.agent.http.common import HTTPError, block, current_ctx, json_response, query_flag, query_int, read_body
from nomadmesh.agent.http.parts import consul_parts
from nomadmesh.agent.state import CasError, Record

bp = Blueprint("consul_kv", __name__)

KIND = "kv"
MAX_VALUE_BYTES = 512 * 1024
_MAX_FLAGS = 2**64 - 1


def validate_key(key: str, allow_empty: bool = False) -> str:
    if not key and not allow_empty:
        raise HTTPError(400, "Missing key name")
    if key.startswith("/"):
        raise HTTPError(400, f"Invalid key {key!r}: must not start with '/'")
    if any(seg in (".", "..") for seg in key.split("/")):
        raise HTTPError(400, f"Invalid key {key!r}: '.' and '..' segments are not allowed")
    if "\x00" in key:
        raise HTTPError(400, "Invalid key: contains a NUL byte")
    return key


def entry(rec: Record) -> dict[str, Any]:
    """A stored record as Consul's KVPair JSON (Session only while a session holds the key)."""
    lock = kv_entry_fields(rec.value)
    out = {"LockIndex": lock["LockIndex"], "Key": rec.key, "Flags": rec.value.get("Flags", 0),
           "Value": rec.value.get("Value")}
    if "Session" in lock:
        out["Session"] = lock["Session"]
    return dict(out, CreateIndex=rec.create_index, ModifyIndex=rec.modify_index)


def keys_up_to(keys: list[str], prefix: str, separator: str) -> list[str]:
    """Consul's `?keys&separator=`: keys under `prefix`, cut after the first separator past it."""
    out: list[str] = []
    for key in keys:
        if separator:
            cut = key.find(separator, len(prefix))
            if cut >= 0:
                key = key[: cut + len(separator)]
        if not out or out[-1] != key:
            out.append(key)
    return out


def _not_found(index: int) -> Response:
    resp = json_response(None, status=404, index=index)
    resp.set_data(b"")
    return resp


@bp.get("/v1/kv/<anypath:key>")
async def get(key: str) -> Response:
    ctx = current_ctx()
    recurse, keys_only = query_flag("recurse"), query_flag("keys")
    validate_key(key, allow_empty=recurse or keys_only)
    index = await block(ctx.state, (KIND,))
    if keys_only:
        found = [r.key for r in ctx.state.records(KIND, key)]
        if not found:
            return _not_found(index)
        return json_response(keys_up_to(found, key, request.args.get("separator", "")), index=index)
    if recurse:
        records = ctx.state.records(KIND, key)
        if not records:
            return _not_found(index)
        return json_response([entry(r) for r in records], index=index)
    rec = ctx.state.get(KIND, key)
    if rec is None:
        return _not_found(index)
    if query_flag("raw"):
        value = rec.value.get("Value")
        resp = Response(base64.b64decode(value) if value else b"", mimetype="application/octet-stream")
        resp.headers["X-Consul-Index"] = str(index)
        return resp
    return json_response([entry(rec)], index=index)


@bp.put("/v1/kv/<anypath:key>")
def put(key: str) -> Response:
    validate_key(key)
    cas = query_int("cas")
    flags = query_int("flags", 0) or 0
    if flags > _MAX_FLAGS:
        raise HTTPError(400, f"Invalid flags value: {flags} does not fit in 64 bits")
    raw = read_body(MAX_VALUE_BYTES)
    value: dict[str, Any] = {"Flags": flags, "Value": base64.b64encode(raw).decode() if raw else None}
    sessions = consul_parts().sessions
    try:
        with current_ctx().state.write() as txn:
            # Consul's precedence when several are given: release, then acquire, then cas.
            if "release" in request.args:
                return json_response(sessions.release(txn, key, request.args["release"], value))
            if "acquire" in request.args:
                return json_response(sessions.acquire(txn, key, request.args["acquire"], value))
            current = txn.get(KIND, key)
            if current is not None:  # a plain write keeps the key's lock, as Consul's does
                value.update(kv_entry_fields(current.value))
            txn.put(KIND, key, value, cas=cas)
    except CasError:
        return json_response(False)
    except SessionError as e:
        raise HTTPError(500, str(e)) from None
    return json_response(True)


@bp.delete("/v1/kv/<anypath:key>")
def delete(key: str) -> Response:
    recurse = query_flag("recurse")
    validate_key(key, allow_empty=recurse)
    cas = query_int("cas")
    state = current_ctx().state
    with state.write() as txn:
        if recurse:
            txn.delete_prefix(KIND, key)
            return json_response(True)
        if cas is not None:
            current = txn.get(KIND, key)
            if current is None:
                return json_response(True)  # Consul: a CAS delete of a missing key succeeds
            if current.modify_index != cas:
                return json_response(False)
        txn.delete(KIND, key)
    return json_response(True)
