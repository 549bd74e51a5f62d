"""Consul's session endpoints: /v1/session/{create,destroy,info,list,node,renew}.

Reads block on the sessions' index. What Consul's server refuses (bad Behavior or TTL, a missing
or critical check) comes back as 500 with Consul's text, as Consul's RPC errors do.
"""
from __future__ import annotations

from quart import Blueprint, Response

from nomadmesh.agent.consul.sessions import KIND, SessionError, Sessions
from nomadmesh.agent.http.common import HTTPError, block, current_ctx, json_body, json_response
from nomadmesh.agent.http.parts import consul_parts

bp = Blueprint("consul_session", __name__)


def _sessions() -> Sessions:
    return consul_parts().sessions


@bp.put("/v1/session/create")
def create() -> Response:
    body = json_body(required=False) or {}
    if not isinstance(body, dict):
        raise HTTPError(400, "Request decode failed: the body must be a JSON object")
    try:
        session_id = _sessions().create(body)
    except SessionError as e:
        raise HTTPError(500, str(e)) from None
    return json_response({"ID": session_id})


@bp.put("/v1/session/destroy/<path:session_id>")
def destroy(session_id: str) -> Response:
    _sessions().destroy(session_id)
    return json_response(True)


@bp.put("/v1/session/renew/<path:session_id>")
def renew(session_id: str) -> Response:
    sess = _sessions().renew(session_id)
    if sess is None:
        raise HTTPError(404, f"Session id '{session_id}' not found")
    return json_response([sess], index=current_ctx().state.kind_index(KIND))


@bp.get("/v1/session/info/<path:session_id>")
async def info(session_id: str) -> Response:
    index = await block(current_ctx().state, (KIND,))
    sess = _sessions().get(session_id)
    return json_response([sess] if sess else [], index=index)


@bp.get("/v1/session/list")
async def list_sessions() -> Response:
    index = await block(current_ctx().state, (KIND,))
    return json_response(_sessions().list(), index=index)


@bp.get("/v1/session/node/<path:node>")
async def node_sessions(node: str) -> Response:
    index = await block(current_ctx().state, (KIND,))
    return json_response([s for s in _sessions().list() if s["Node"] == node], index=index)

