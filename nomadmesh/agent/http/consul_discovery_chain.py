"""Consul's GET /v1/discovery-chain/:service: the compiled chain of router, splitter and resolver
entries (agent/consul/discovery_chain.py) as Consul returns it, `{"Chain": {...}}`.

`?compile-dc=` evaluates the chain as seen from that datacenter (the targets' datacenter); a
blocking query (?index=) returns when any config entry changes. A graph Consul refuses answers
500 with Consul's text, as Consul's RPC error does.
"""
from __future__ import annotations

from quart import Blueprint, Response, request

from nomadmesh.agent.consul.config_store import KIND, key
from nomadmesh.agent.consul.discovery_chain import ChainError, compile_chain
from nomadmesh.agent.http.common import HTTPError, block, current_ctx, json_response
from nomadmesh.agent.http.parts import consul_parts

bp = Blueprint("consul_discovery_chain", __name__)


@bp.get("/v1/discovery-chain/<path:service>")
async def discovery_chain(service: str) -> Response:
    ctx = current_ctx()
    index = await block(ctx.state, (KIND,))
    datacenter = request.args.get("compile-dc") or ctx.config.datacenter

    def lookup(kind: str, name: str) -> dict | None:
        rec = ctx.state.get(KIND, key(kind, name))
        return rec.value if rec is not None else None

    try:
        chain = compile_chain(service, lookup, datacenter, consul_parts().connect.ca.trust_domain)
    except ChainError as e:
        raise HTTPError(500, str(e)) from None
    return json_response({"Chain": chain.to_json()}, index=index)
