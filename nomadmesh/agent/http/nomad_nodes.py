"""Node actions: /v1/node/<id>/drain, /eligibility, /evaluate, /purge (PUT or POST).

Nomad answers their RPC errors ("node not found", an invalid eligibility) with 500 and the error's
text, and a body it cannot decode with 400.
"""
from __future__ import annotations

from typing import Any

from quart import Blueprint, Response

from nomadmesh.agent.http.common import json_body as _json_body, read_body
from nomadmesh.agent.http.nomad_ctx import ctx, notify, scheduler
from nomadmesh.agent.http.nomad_util import HTTPError, reply
from nomadmesh.agent.nomad import node_ops

bp = Blueprint("nomad_nodes", __name__)
WRITE = ["PUT", "POST"]


def _body() -> dict[str, Any]:
    """decodeBody: an empty body is "Request body is empty"; a malformed one is 400 as well."""
    if not read_body().strip():
        raise HTTPError(400, "Request body is empty")
    body = _json_body(required=True)
    if not isinstance(body, dict):
        raise HTTPError(400, "json: cannot unmarshal into Go value of type struct")
    return body


def _answer(out: node_ops.NodeUpdate, **extra: Any) -> Response:
    notify()
    return reply({"EvalIDs": out.eval_ids or None, "EvalCreateIndex": out.eval_index, "NodeModifyIndex": out.index,
                  "Index": out.index, "LastContact": 0, "KnownLeader": True, **extra}, out.index)


def _run(action: Any, *args: Any) -> node_ops.NodeUpdate:
    try:
        result: node_ops.NodeUpdate = action(ctx().state, *args)
    except node_ops.NodeOpError as e:
        raise HTTPError(500, str(e)) from None
    return result


@bp.route("/v1/node/<node_id>/drain", methods=WRITE)
def drain(node_id: str) -> Response:
    body = _body()
    spec = body.get("DrainSpec")
    if spec is not None and not isinstance(spec, dict):
        raise HTTPError(400, "json: cannot unmarshal DrainSpec into Go struct field of type api.DrainSpec")
    out = _run(node_ops.update_drain, node_id, spec, bool(body.get("MarkEligible")), body.get("Meta"))
    return _answer(out)


@bp.route("/v1/node/<node_id>/eligibility", methods=WRITE)
def eligibility(node_id: str) -> Response:
    body = _body()
    out = _run(node_ops.update_eligibility, body.get("NodeID") or node_id, str(body.get("Eligibility") or ""))
    return _answer(out)


@bp.route("/v1/node/<node_id>/evaluate", methods=WRITE)
def evaluate(node_id: str) -> Response:
    out = _run(node_ops.evaluate, node_id)
    return _answer(out, HeartbeatTTL=0)


@bp.route("/v1/node/<node_id>/purge", methods=WRITE)
def purge(node_id: str) -> Response:
    out = _run(node_ops.purge, node_id)
    if node_id == ctx().node_id:
        scheduler().register_node()  # this agent's client is alive: it joins again at once
    return _answer(out, HeartbeatTTL=0)

