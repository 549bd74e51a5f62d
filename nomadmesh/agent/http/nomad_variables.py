"""/v1/vars and /v1/var/<path>: Nomad Variables (command/agent/variable_endpoint.go).

A write answers the variable (200), a delete 204; a check-and-set (`?cas=`) that finds another
ModifyIndex answers 409 with the variable it found. `?lock-acquire`, `?lock-release` and
`?lock-renew` operate the variable's lock (nomad/variables.py); each acquire or renew arms a timer
on the event loop that takes the lock away once its TTL lapsed without a renew.
"""
from __future__ import annotations

import asyncio
from typing import Any

from quart import Blueprint, Response, request

from nomadmesh.agent.http.common import set_index_headers
from nomadmesh.agent.http.nomad_ctx import ctx
from nomadmesh.agent.http.nomad_util import HTTPError, blocking, json_body, reply, request_namespace
from nomadmesh.agent.nomad import variables

bp = Blueprint("nomad_variables", __name__)

LOCK_OPERATIONS = ("lock-acquire", "lock-release", "lock-renew")
VARIABLE_FIELDS = ("Namespace", "Path", "Items", "Lock", "CreateIndex", "CreateTime", "ModifyIndex", "ModifyTime")


def _cas() -> int | None:
    raw = request.args.get("cas", "")
    if raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) >= 2**64:
        raise HTTPError(400, f'can not parse cas: strconv.ParseUint: parsing "{raw}": invalid syntax')
    return int(raw)


def _answer(outcome: variables.Outcome, ok_status: int = 200) -> Response:
    if outcome.conflict:
        return reply(outcome.variable, outcome.index, status=409)
    if outcome.variable is None:
        resp = Response(b"", status=ok_status)
        set_index_headers(resp, outcome.index, "X-Nomad-Index")
        return resp
    return reply(outcome.variable, outcome.index, status=ok_status)


def _items(body: dict[str, Any], required: bool = True) -> dict[str, str]:
    unknown = sorted(set(body) - set(VARIABLE_FIELDS))
    if unknown:
        raise HTTPError(400, f"variable: unknown field {unknown[0]!r}")
    items = body.get("Items")
    if items is not None and (not isinstance(items, dict) or not all(isinstance(v, str) for v in items.values())):
        raise HTTPError(400, "Request decode failed: Items must map names to strings")
    if required and not items:
        raise HTTPError(400, "variable missing required Items object")
    return items or {}


def _lock(body: dict[str, Any]) -> dict[str, Any]:
    lock = body.get("Lock")
    if lock is not None and not isinstance(lock, dict):
        raise HTTPError(400, "Request decode failed: Lock must be an object")
    return lock or {}


def _namespace(body: dict[str, Any]) -> str:
    """The variable's namespace: its own `Namespace`, else the request's (Nomad's Variables.Apply)."""
    ns = body.get("Namespace")
    if ns is not None and not isinstance(ns, str):
        raise HTTPError(400, "Request decode failed: Namespace must be a string")
    return ns or request_namespace()


def _lock_operation() -> str | None:
    asked = [op for op in LOCK_OPERATIONS if op in request.args]
    if len(asked) > 1:
        raise HTTPError(400, "multiple lock operations")
    if asked and request.args.get("cas", "") != "":
        raise HTTPError(400, "CAS can't be used with lock operations")
    return asked[0] if asked else None


def _arm_expiry(namespace: str, path: str, lock: dict[str, Any]) -> None:
    """Take the lock away once its TTL lapses without a renew (a renew arms a later timer; this one
    then finds the lock still held and leaves it)."""
    state = ctx().state

    def lapse() -> None:
        variables.expire(state, namespace, path, lock["ID"])

    asyncio.get_running_loop().call_later(lock["TTL"] / 1e9 + 0.05, lapse)


def _lock_op(operation: str, path: str, body: dict[str, Any]) -> Response:
    namespace, lock_id = _namespace(body), str(_lock(body).get("ID") or "")
    if operation == "lock-acquire":
        lock = variables.lock_from(_lock(body))
        outcome = variables.acquire(ctx().state, namespace, path, _items(body, required=False), lock)
        if not outcome.conflict:
            _arm_expiry(namespace, path, lock)
        return _answer(outcome)
    if operation == "lock-release":
        if body.get("Items"):
            raise HTTPError(400, "RPC Error:: 400,lock release operation doesn't take variable items")
        return _answer(variables.release(ctx().state, namespace, path, lock_id))
    outcome = variables.renew(ctx().state, request_namespace(), path, lock_id)  # raises unless held
    _arm_expiry(request_namespace(), path, {"ID": lock_id,
                                            "TTL": variables.lock_ttl(ctx().state, request_namespace(), path)})
    return _answer(outcome)


@bp.get("/v1/vars")
async def list_variables() -> Response:
    state = ctx().state
    index = await blocking(state, (variables.KIND,))
    return reply(variables.listing(state, request_namespace(), request.args.get("prefix", "")), index)


@bp.route("/v1/var/", methods=["GET", "PUT", "POST", "DELETE"])
def missing_path() -> Response:
    raise HTTPError(400, "missing variable path")


@bp.get("/v1/var/<path:path>")
async def get_variable(path: str) -> Response:
    state = ctx().state
    index = await blocking(state, (variables.KIND,))
    found = variables.read(state, request_namespace(), path)
    if found is None:
        raise HTTPError(404, "variable not found")
    return reply(found, index)


@bp.route("/v1/var/<path:path>", methods=["PUT", "POST"])
async def put_variable(path: str) -> Response:
    operation = _lock_operation()
    body = json_body()
    try:
        if operation is not None:
            return _lock_op(operation, path, body)
        items = _items(body)
        lock = _lock(body)
        if lock.get("TTL") or lock.get("LockDelay"):
            raise HTTPError(400, "RPC Error:: 400,variable should not contain lock definition")
        return _answer(variables.put(ctx().state, _namespace(body), path, items, _cas(), str(lock.get("ID") or "")))
    except variables.VariableError as e:
        raise HTTPError(e.status, str(e)) from None


@bp.delete("/v1/var/<path:path>")
def delete_variable(path: str) -> Response:
    return _answer(variables.delete(ctx().state, request_namespace(), path, _cas()), ok_status=204)
