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

All read the agent's Connect plane (agent/connect/plane.py) from the app's parts. The leaf route's
plain form is hot (every proxy, every renewal): FastLeaf answers it in front of Quart, and a fresh
leaf is signed by the plane's signer process while the loop serves other requests.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from quart import Blueprint, Response

from nomadmesh.agent.connect import ca as ca_mod
from nomadmesh.agent.connect.ca_admin import KIND as CA_KIND
from nomadmesh.agent.connect.ca_config import CAConfigError
from nomadmesh.agent.connect.plane import ConnectRuntime
from nomadmesh.agent.http.common import HTTPError, block, blocking_args, json_body, json_response, query_flag
from nomadmesh.agent.http.parts import ConsulParts, consul_parts
from nomadmesh.webguard import OwnAddress, own_address, refusal

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
    args = blocking_args()
    found: tuple[ca_mod.Leaf, int]
    if args.index > 0:  # a blocking query waits in a worker thread
        found = await asyncio.get_running_loop().run_in_executor(
            None, connect.manager.wait_leaf, service, args.index, args.wait_s)
    else:
        found = await current_leaf(connect, service, consul_parts().ctx.config.datacenter)
    cert, index = found
    return json_response(ca_mod.leaf_json(cert, index), index=index)


async def current_leaf(connect: ConnectRuntime, service: str, datacenter: str) -> tuple[ca_mod.Leaf, int]:
    """The leaf of `service` held by the manager, or a new one signed by the signer process while
    the loop serves other requests."""
    manager = connect.manager
    found = manager.held_leaf_if_free(service)
    if found is None:  # none held yet, or due
        ca = manager.ca
        signed = await connect.signer.sign(ca, service, datacenter)
        if signed is not None:
            found = manager.adopt_leaf_if_free(service, signed, ca)
    if found is None:
        # No signer: on the loop, signing one leaf costs less than a hop to a worker thread and
        # back; only a busy lock (a root rotation re-signing) sends it there.
        found = manager.leaf_if_free(service)
    if found is None:
        found = await asyncio.get_running_loop().run_in_executor(None, manager.leaf_with_index, service)
    return found


LEAF_PREFIX = "/v1/agent/connect/ca/leaf/"
LEAF_METRIC_PATH = "v1_agent_connect_ca_leaf_"  # what consul_metrics names the route's samples


class FastLeaf:
    """ASGI middleware (Quart's `app.asgi_app`) answering the hot `GET /v1/agent/connect/ca/leaf/<service>`
    without Quart's request machinery, which costs as much CPU as signing the leaf.

    It takes only the plainest form of the request: GET, no query (so no blocking query, `?dc` or
    bad `?wait` to judge), no body, a service name without '/', and a request the DNS-rebinding
    guard lets through. Anything else, a refusal included, goes to Quart, which answers it
    as before; so does a request that fails here before a byte is sent. The answer is the view's:
    the same JSON, status, headers (X-Consul-Index, -KnownLeader, -LastContact) and timing sample."""

    def __init__(self, app: Any, parts: ConsulParts) -> None:
        self.app = app
        self.parts = parts
        config = parts.ctx.config
        self.own = own_address(config.bind, config.consul_port)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        service = plain_leaf_service(scope, self.own)
        if service is None:
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        try:
            leaf, index = await current_leaf(self.parts.connect, service, self.parts.ctx.config.datacenter)
            body = json.dumps(ca_mod.leaf_json(leaf, index)).encode()
        except Exception:  # Quart answers it (and logs it) as it would have
            return await self.app(scope, receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"x-consul-index", str(index).encode()), (b"x-consul-knownleader", b"true"),
            (b"x-consul-lastcontact", b"0")]})
        await send({"type": "http.response.body", "body": body})
        self.parts.metrics.add_sample("consul.api.http", (time.perf_counter() - started) * 1000,
                                      {"method": "GET", "path": LEAF_METRIC_PATH})


def plain_leaf_service(scope: dict[str, Any], own: OwnAddress) -> str | None:
    """The service a plain leaf request (see FastLeaf) asks for; None for anything Quart must judge."""
    path = scope.get("path", "")
    if scope["type"] != "http" or scope["method"] != "GET" or scope.get("query_string") \
            or not path.startswith(LEAF_PREFIX):
        return None
    service = path[len(LEAF_PREFIX):]
    if not service or "/" in service:
        return None
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        if key in ("content-length", "transfer-encoding"):
            return None  # a body: Quart reads (and bounds) it
        headers.setdefault(key, value.decode("latin-1"))
    if refusal("GET", _LowerHeaders(headers), own) is not None:
        return None
    return service


class _LowerHeaders:
    """`refusal`'s view of ASGI headers: case-insensitive `get`, the first value of a name."""

    def __init__(self, lowered: dict[str, str]) -> None:
        self._lowered = lowered

    def get(self, key: str) -> str | None:
        return self._lowered.get(key.lower())
