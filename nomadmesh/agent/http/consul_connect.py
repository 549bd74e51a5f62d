"""Consul's Connect CA endpoints, served from the agent's CA and proxy manager.

    GET /v1/connect/ca/roots                 the trust bundle (ActiveRootID, TrustDomain, Roots: the
                                             active root and those rotated out); `?pem=true`: the
                                             roots as a PEM chain; a blocking query (?index=)
                                             returns when the CA configuration is written
    GET /v1/agent/connect/ca/roots           the same, as the local agent serves it
    GET/PUT /v1/connect/ca/configuration     the CA's configuration (provider "consul"); a PUT that
                                             asks for another root rotates it (cross-signed)
    GET /v1/agent/connect/ca/leaf/<service>  a leaf certificate + key for <service>; a blocking
                                             query (?index=) returns when that leaf is rotated

All read the agent's Connect plane (agent/connect/plane.py) from the app's parts.
"""
from __future__ import annotations

import asyncio

from quart import Blueprint, Response

from nomadmesh.agent.connect import ca as ca_mod
from nomadmesh.agent.connect.ca_admin import KIND as CA_KIND
from nomadmesh.agent.connect.ca_config import CAConfigError
from nomadmesh.agent.connect.plane import ConnectRuntime
from nomadmesh.agent.http.common import HTTPError, block, blocking_args, json_body, json_response, query_flag
from nomadmesh.agent.http.parts import consul_parts

bp = Blueprint("consul_connect", __name__)


def _connect() -> ConnectRuntime:
    return consul_parts().connect


@bp.get("/v1/connect/ca/roots")
@bp.get("/v1/agent/connect/ca/roots")
async def roots() -> Response:
    connect = _connect()
    await block(consul_parts().ctx.state, (CA_KIND,))
    index = connect.ca_admin.index()
    ca = connect.ca
    if query_flag("pem"):
        resp = Response(ca.trust_bundle_pem, status=200, content_type="application/pem-certificate-chain")
        resp.headers["X-Consul-Index"] = str(index)
        return resp
    return json_response(ca_mod.roots_json(ca, index), index=index)


@bp.get("/v1/connect/ca/configuration")
def ca_configuration() -> Response:
    admin = _connect().ca_admin
    return json_response(admin.config_json(), index=admin.index())


@bp.put("/v1/connect/ca/configuration")
def set_ca_configuration() -> Response:
    body = json_body()
    try:
        _connect().ca_admin.update(body)
    except CAConfigError as e:
        status = 400 if str(e).startswith("Request decode failed") else 500  # Consul: RPC errors are 500
        raise HTTPError(status, str(e)) from None
    return Response("", status=200)


@bp.get("/v1/agent/connect/ca/leaf/<service>")
async def leaf(service: str) -> Response:
    connect = _connect()
    manager = connect.manager
    args = blocking_args()
    loop = asyncio.get_running_loop()
    found: tuple[ca_mod.Leaf, int] | None
    if args.index > 0:  # a blocking query waits in a worker thread
        found = await loop.run_in_executor(None, manager.wait_leaf, service, args.index, args.wait_s)
    else:
        found = manager.held_leaf_if_free(service)
        if found is None:  # none held yet, or due: signed by the signer process while the loop serves others
            ca = manager.ca
            signed = await connect.signer.sign(ca, service, consul_parts().ctx.config.datacenter)
            if signed is not None:
                found = manager.adopt_leaf_if_free(service, signed, ca)
        if found is None:
            # No signer: on the loop, signing one leaf costs less than a hop to a worker thread and
            # back; only a busy lock (a root rotation re-signing) sends it there.
            found = manager.leaf_if_free(service)
        if found is None:
            found = await loop.run_in_executor(None, manager.leaf_with_index, service)
    cert, index = found
    return json_response(ca_mod.leaf_json(cert, index), index=index)
