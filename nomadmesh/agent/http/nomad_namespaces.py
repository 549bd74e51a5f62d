"""/v1/namespaces and /v1/namespace[/<name>]: list, read, create/update and delete Nomad namespaces
(command/agent/namespace_endpoint.go). Writes answer 200 with an empty body and X-Nomad-Index."""
from __future__ import annotations

from quart import Blueprint, Response, request

from nomadmesh.agent.http.common import set_index_headers
from nomadmesh.agent.http.nomad_ctx import ctx
from nomadmesh.agent.http.nomad_util import HTTPError, blocking, json_body, reply
from nomadmesh.agent.nomad import namespaces

bp = Blueprint("nomad_namespaces", __name__)


def _written(index: int) -> Response:
    resp = Response(b"", status=200)
    set_index_headers(resp, index, "X-Nomad-Index")
    return resp


def _upsert(path_name: str | None) -> Response:
    body = json_body()
    if path_name is not None and body.get("Name") != path_name:
        raise HTTPError(400, "Namespace name does not match request path")
    try:
        return _written(namespaces.upsert(ctx().state, body))
    except namespaces.NamespaceError as e:
        raise HTTPError(e.status, str(e)) from None


@bp.get("/v1/namespaces")
async def list_namespaces() -> Response:
    state = ctx().state
    index = await blocking(state, (namespaces.KIND,))
    return reply(namespaces.listing(state, request.args.get("prefix", "")), index)


@bp.route("/v1/namespace", methods=["POST", "PUT"])
def create_namespace() -> Response:
    return _upsert(None)


@bp.route("/v1/namespace/", methods=["GET", "POST", "PUT", "DELETE"])
def missing_name() -> Response:
    raise HTTPError(400, "Missing Namespace Name")


@bp.get("/v1/namespace/<path:name>")
async def get_namespace(name: str) -> Response:
    state = ctx().state
    index = await blocking(state, (namespaces.KIND,))
    found = namespaces.get(state, name)
    if found is None:
        raise HTTPError(404, "Namespace not found")
    return reply(found, index)


@bp.route("/v1/namespace/<path:name>", methods=["POST", "PUT"])
def update_namespace(name: str) -> Response:
    return _upsert(name)


@bp.delete("/v1/namespace/<path:name>")
def delete_namespace(name: str) -> Response:
    try:
        return _written(namespaces.delete(ctx().state, name))
    except namespaces.NamespaceError as e:
        raise HTTPError(e.status, str(e)) from None
