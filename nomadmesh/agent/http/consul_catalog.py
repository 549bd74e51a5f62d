"""Consul's catalog and health endpoints, read from the agent's Catalog. All of them block.

The dev agent's catalog has one node (the agent itself) and no "consul" service entry: only what
was registered shows up, which is what callers of these endpoints look for.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import Blueprint, Response, request

from nomadmesh.agent.consul import external, filter as bexpr
from nomadmesh.agent.consul.catalog import Catalog
from nomadmesh.agent.http.common import HTTPError, block, current_ctx, json_body, json_response, query_flag
from nomadmesh.agent.http.consul_filtering import node_meta_filter, request_filter
from nomadmesh.agent.http.parts import consul_parts

bp = Blueprint("consul_catalog", __name__)

CATALOG_KINDS = ("service", *external.KINDS)
HEALTH_KINDS = ("service", "check", *external.KINDS)
_STATES = ("any", "passing", "warning", "critical")


def _catalog() -> Catalog:
    return consul_parts().catalog


async def _blocked(kinds: tuple[str, ...]) -> int:
    return await block(current_ctx().state, kinds)


def _tag_filter(rows: list[dict[str, Any]], tags_of: Callable[[dict[str, Any]], list[str]]) -> list[dict[str, Any]]:
    wanted = request.args.getlist("tag")
    return [r for r in rows if all(t in tags_of(r) for t in wanted)] if wanted else rows


@bp.get("/v1/catalog/services")
async def services() -> Response:
    keep = request_filter(bexpr.SERVICE_NODE)
    index = await _blocked(CATALOG_KINDS)
    out: dict[str, list[str]] = {}
    catalog = _catalog()
    by_meta = node_meta_filter(lambda r: r["NodeMeta"])
    for row in keep(by_meta(catalog.catalog_rows())):
        svc = {"Service": row["ServiceName"], "Tags": row["ServiceTags"]}
        tags = out.setdefault(svc["Service"], [])
        tags.extend(t for t in svc["Tags"] if t not in tags)
    return json_response(dict(sorted(out.items())), index=index)


@bp.get("/v1/catalog/service/<path:name>")
async def service(name: str) -> Response:
    keep = request_filter(bexpr.SERVICE_NODE)
    index = await _blocked(CATALOG_KINDS)
    rows = [] if _peer() else _tag_filter(_catalog().catalog_service(name), lambda r: r["ServiceTags"])
    return json_response(keep(node_meta_filter(lambda r: r["NodeMeta"])(rows)), index=index)


@bp.get("/v1/catalog/connect/<path:name>")
async def connect(name: str) -> Response:
    keep = request_filter(bexpr.SERVICE_NODE)
    index = await _blocked(CATALOG_KINDS)
    return json_response(keep(_catalog().catalog_service(name, connect=True)), index=index)


@bp.get("/v1/catalog/nodes")
async def nodes() -> Response:
    keep = request_filter(bexpr.NODE)
    index = await _blocked(("node", external.NODE_KIND))
    return json_response(keep(node_meta_filter(lambda n: n["Meta"])(_catalog().nodes())), index=index)


@bp.get("/v1/catalog/node/<path:node>")
async def node(node: str) -> Response:
    keep = request_filter(bexpr.AGENT_SERVICE)
    index = await _blocked(CATALOG_KINDS)
    catalog = _catalog()
    doc = catalog.node_doc(node)
    if doc is None:
        return json_response(None, index=index)
    return json_response({"Node": doc, "Services": {s["ID"]: s for s in keep(catalog.node_services(node))}},
                         index=index)


@bp.put("/v1/catalog/register")
def register() -> Response:
    body = json_body()
    if not isinstance(body, dict):
        raise HTTPError(400, "Request decode failed: the body must be a JSON object")
    try:
        _catalog().external.register(body)
    except external.RegistrationError as e:
        raise HTTPError(500, str(e)) from None
    return json_response(True)


@bp.put("/v1/catalog/deregister")
def deregister() -> Response:
    body = json_body()
    if not isinstance(body, dict):
        raise HTTPError(400, "Request decode failed: the body must be a JSON object")
    try:
        _catalog().deregister_external(body)
    except external.RegistrationError as e:
        raise HTTPError(500, str(e)) from None
    return json_response(True)


@bp.get("/v1/catalog/datacenters")
def datacenters() -> Response:
    return json_response([current_ctx().config.datacenter])


@bp.get("/v1/health/service/<path:name>")
async def health_service(name: str) -> Response:
    keep = request_filter(bexpr.CHECK_SERVICE_NODE)
    index = await _blocked(HEALTH_KINDS)
    rows = [] if _peer() else _catalog().health(name, passing_only=query_flag("passing"))
    rows = node_meta_filter(lambda r: r["Node"]["Meta"])(rows)
    return json_response(keep(_tag_filter(rows, lambda r: r["Service"]["Tags"])), index=index)


@bp.get("/v1/health/connect/<path:name>")
async def health_connect(name: str) -> Response:
    keep = request_filter(bexpr.CHECK_SERVICE_NODE)
    index = await _blocked(HEALTH_KINDS)
    rows = [] if _peer() else _catalog().health(name, passing_only=query_flag("passing"), connect=True)
    return json_response(keep(rows), index=index)


@bp.get("/v1/health/ingress/<path:name>")
async def health_ingress(name: str) -> Response:
    keep = request_filter(bexpr.CHECK_SERVICE_NODE)
    index = await _blocked((*HEALTH_KINDS, "config"))
    rows = [] if _peer() else _catalog().ingress(name, passing_only=query_flag("passing"))
    return json_response(keep(rows), index=index)


def _peer() -> bool:
    """`?peer=`: the dev agent has no cluster peerings, so nothing is imported from any peer."""
    return bool(request.args.get("peer"))


@bp.get("/v1/health/checks/<path:name>")
async def health_checks(name: str) -> Response:
    keep = request_filter(bexpr.HEALTH_CHECK)
    index = await _blocked(HEALTH_KINDS)
    return json_response(keep([c for c in _catalog().all_checks() if c.get("ServiceName") == name]),
                         index=index)


@bp.get("/v1/health/node/<path:node>")
async def health_node(node: str) -> Response:
    keep = request_filter(bexpr.HEALTH_CHECK)
    index = await _blocked(HEALTH_KINDS)
    return json_response(keep(_catalog().node_checks(node)), index=index)


@bp.get("/v1/health/state/<state>")
async def health_state(state: str) -> Response:
    if state not in _STATES:
        raise HTTPError(400, f"Invalid check state: {state!r} (any, passing, warning or critical)")
    keep = request_filter(bexpr.HEALTH_CHECK)
    index = await _blocked(HEALTH_KINDS)
    checks = _catalog().all_checks()
    return json_response(keep([c for c in checks if state == "any" or c["Status"] == state]), index=index)
