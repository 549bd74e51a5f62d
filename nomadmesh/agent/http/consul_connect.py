"""Consul's Connect CA endpoints, served from the agent's CA and proxy manager.

    GET /v1/connect/ca/roots                 the trust bundle (ActiveRootID, TrustDomain, Roots)
    GET /v1/agent/connect/ca/roots           the same, as the local agent serves it
    GET /v1/agent/connect/ca/leaf/<service>  a leaf certificate + key for <service>; a blocking
                                             query (?index=) returns when that leaf is rotated

Both read the agent's Connect plane (agent/connect/plane.py) from the app's parts.
"""
from __future__ import annotations

from quart import Blueprint, Response

from nomadmesh.agent.connect import ca as ca_mod
from nomadmesh.agent.connect.plane import ConnectRuntime
from nomadmesh.agent.http.common import blocking_args, json_response
from nomadmesh.agent.http.parts import consul_parts

bp = Blueprint("consul_connect", __name__)
ROOTS_INDEX = 1  # the root never changes in the dev agent


def _connect() -> ConnectRuntime:
    return consul_parts().connect


@bp.get("/v1/connect/ca/roots")
@bp.get("/v1/agent/connect/ca/roots")
def roots() -> Response:
    return json_response(ca_mod.roots_json(_connect().ca, ROOTS_INDEX), index=ROOTS_INDEX)


@bp.get("/v1/agent/connect/ca/leaf/<service>")
def leaf(service: str) -> Response:
    manager = _connect().manager
    args = blocking_args()
    if args.index > 0:
        cert, index = manager.wait_leaf(service, args.index, args.wait_s)
    else:
        cert, index = manager.leaf_with_index(service)
    return json_response(ca_mod.leaf_json(cert, index), index=index)
