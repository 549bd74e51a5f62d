"""Consul's /v1/discovery-chain/:service: the compiled chain of router, splitter and resolver
entries (agent/consul/discovery_chain.py) as Consul returns it, `{"Chain": {...}}`.

GET, or POST with Consul's overrides in the body (OverrideProtocol, OverrideConnectTimeout,
OverrideMeshGateway.Mode; snake_case too). `?compile-dc=` evaluates the chain as seen from that
datacenter; a blocking query (?index=) returns when any config entry changes. A graph Consul
refuses answers 500 with Consul's text, as Consul's RPC error does.
"""
from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request

from nomadmesh.agent.consul.config_store import KIND, key
from nomadmesh.agent.consul.discovery_chain import ChainError, Overrides, compile_chain, duration_ns
from nomadmesh.agent.http.common import HTTPError, block, current_ctx, json_body, json_response
from nomadmesh.agent.http.parts import consul_parts

bp = Blueprint("consul_discovery_chain", __name__)

MESH_GATEWAY_MODES = ("", "none", "local", "remote")


def _field(body: dict[str, Any], name: str, snake: str) -> Any:
    return body[name] if body.get(name) is not None else body.get(snake)


def overrides(body: Any) -> Overrides:
    """Consul's discoveryChainReadRequest decoding; HTTPError 400 with Consul's text."""
    if body is None:
        return Overrides()
    if not isinstance(body, dict):
        raise HTTPError(400, "Request decoding failed: the body must be a JSON object")
    protocol = _field(body, "OverrideProtocol", "override_protocol")
    if protocol is not None and not isinstance(protocol, str | int | float | bool):
        raise HTTPError(400, f"Request decoding failed: OverrideProtocol: invalid type {type(protocol).__name__}")
    gateway = _field(body, "OverrideMeshGateway", "override_mesh_gateway") or {}
    mode = str(gateway.get("Mode") or "") if isinstance(gateway, dict) else ""
    if mode not in MESH_GATEWAY_MODES:
        raise HTTPError(400, "Invalid OverrideMeshGateway.Mode parameter")
    try:
        timeout = duration_ns(_field(body, "OverrideConnectTimeout", "override_connect_timeout"))
    except ChainError as e:
        raise HTTPError(400, f"Request decoding failed: {e}") from None
    return Overrides(protocol=str(protocol).lower() if protocol is not None else "",
                     connect_timeout_ns=timeout, mesh_gateway_mode=mode)


@bp.route("/v1/discovery-chain/<path:service>", methods=["GET", "POST"])
async def discovery_chain(service: str) -> Response:
    ctx = current_ctx()
    wanted = overrides(json_body(required=False)) if request.method == "POST" else Overrides()
    index = await block(ctx.state, (KIND,))
    datacenter = request.args.get("compile-dc") or ctx.config.datacenter

    def lookup(kind: str, name: str) -> dict | None:
        rec = ctx.state.get(KIND, key(kind, name))
        return rec.value if rec is not None else None

    try:
        chain = compile_chain(service, lookup, datacenter, consul_parts().connect.ca.trust_domain, wanted)
    except ChainError as e:
        raise HTTPError(500, str(e)) from None
    return json_response({"Chain": chain.to_json()}, index=index)


@bp.route("/v1/discovery-chain/", methods=["GET", "POST"])
async def missing_name() -> Response:
    raise HTTPError(400, "Missing chain name")
