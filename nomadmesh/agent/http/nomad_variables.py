"""/v1/vars and /v1/var/<path>: Nomad Variables (command/agent/variable_endpoint.go).

A write answers the variable (200), a delete 204; a check-and-set (`?cas=`) that finds another
ModifyIndex answers 409 with the variable it found. Variable locks (`?lock-acquire`,
`?lock-release`, `?lock-renew`) are not implemented by the dev agent and are refused.
"""
from __future__ import annotations

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


def _items(body: dict[str, Any]) -> dict[str, str]:
    unknown = sorted(set(body) - set(VARIABLE_FIELDS))
    if unknown:
        raise HTTPError(400, f"variable: unknown field {unknown[0]!r}")
    items = body.get("Items")
    if items is not None and (not isinstance(items, dict) or not all(isinstance(v, str) for v in items.values())):
        raise HTTPError(400, "Request decode failed: Items must map names to strings")
    if not items:
        raise HTTPError(400, "variable missing required Items object")
    lock = body.get("Lock")
    if lock and (lock.get("TTL") or lock.get("LockDelay")):
        raise HTTPError(400, "RPC Error:: 400,variable should not contain lock definition")
    return items


def _namespace(body: dict[str, Any]) -> str:
    """The variable's namespace: its own `Namespace`, else the request's (Nomad's Variables.Apply)."""
    ns = body.get("Namespace")
    if ns is not None and not isinstance(ns, str):
        raise HTTPError(400, "Request decode failed: Namespace must be a string")
    return ns or request_namespace()


def _refuse_locks() -> None:
    asked = [op for op in LOCK_OPERATIONS if op in request.args]
    if len(asked) > 1:
        raise HTTPError(400, "multiple lock operations")
    if asked and request.args.get("cas", "") != "":
        raise HTTPError(400, "CAS can't be used with lock operations")
    if asked:
        raise HTTPError(400, f"variable lock operations ({asked[0]}) are not supported by the dev agent")


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
def put_variable(path: str) -> Response:
    _refuse_locks()
    body = json_body()
    items = _items(body)
    try:
        return _answer(variables.put(ctx().state, _namespace(body), path, items, _cas()))
    except variables.VariableError as e:
        raise HTTPError(e.status, str(e)) from None


@bp.delete("/v1/var/<path:path>")
def delete_variable(path: str) -> Response:
    return _answer(variables.delete(ctx().state, request_namespace(), path, _cas()), ok_status=204)
