"""Consul's network coordinates: /v1/coordinate/{datacenters,nodes,node/<node>,update}.

Consul's agents estimate their Vivaldi coordinates from gossip round trips; the dev agent has no
one to measure against, so its node keeps the coordinate a fresh Consul agent starts from (origin,
Error 1.5, Height 1e-5) until a client writes another through /v1/coordinate/update. Updates for
a node the catalog does not know are dropped silently, as Consul's state store drops them, and
invalid ones (NaN, infinite, another dimensionality) fail with Consul's RPC errors (500).
"""
from __future__ import annotations

import math
from typing import Any

from quart import Blueprint, Response

from nomadmesh.agent.http.common import HTTPError, block, current_ctx, json_body, json_response
from nomadmesh.agent.http.parts import consul_parts

bp = Blueprint("consul_coordinate", __name__)

KIND = "coordinate"
DIMENSIONALITY = 8  # Consul's Vivaldi dimensionality
START = {"Vec": [0.0] * DIMENSIONALITY, "Error": 1.5, "Adjustment": 0.0, "Height": 1.0e-5}


def _coordinates(node: str | None = None) -> list[dict[str, Any]]:
    """[{Node, Segment, Coord}] of every node with one, the agent's own node always included."""
    catalog = consul_parts().catalog
    stored = {rec.key: rec.value for rec in current_ctx().state.records(KIND)}
    stored.setdefault(catalog.node_name, START)
    return [{"Node": name, "Segment": "", "Coord": coord} for name, coord in sorted(stored.items())
            if node is None or name == node]


def _valid(coord: Any) -> bool:
    if not isinstance(coord, dict) or not isinstance(coord.get("Vec"), list):
        return False
    numbers = [*coord["Vec"], coord.get("Error", 0), coord.get("Adjustment", 0), coord.get("Height", 0)]
    return all(isinstance(n, int | float) and not isinstance(n, bool) and math.isfinite(n) for n in numbers)


@bp.get("/v1/coordinate/datacenters")
def datacenters() -> Response:
    """The WAN pool's servers: the dev agent, named `<node>.<dc>` as its WAN member is."""
    ctx = current_ctx()
    own = _coordinates(consul_parts().catalog.node_name)[0]["Coord"]
    return json_response([{"Datacenter": ctx.config.datacenter, "AreaID": "wan",
                           "Coordinates": [{"Node": f"{ctx.config.node_name}.{ctx.config.datacenter}",
                                            "Coord": own}]}])


@bp.get("/v1/coordinate/nodes")
async def nodes() -> Response:
    index = await block(current_ctx().state, (KIND,))
    return json_response(_coordinates(), index=index)


@bp.get("/v1/coordinate/node/<path:node>")
async def node(node: str) -> Response:
    index = await block(current_ctx().state, (KIND,))
    found = _coordinates(node)
    if not found:
        resp = json_response(None, status=404, index=index)
        resp.set_data(b"")
        return resp
    return json_response(found, index=index)


@bp.put("/v1/coordinate/update")
def update() -> Response:
    body = json_body()
    if not isinstance(body, dict) or not isinstance(body.get("Node", ""), str):
        raise HTTPError(400, "Request decode failed: the body must be {Node, Segment, Coord}")
    coord = body.get("Coord")
    if not isinstance(coord, dict) or not _valid(coord):
        raise HTTPError(500, "invalid coordinate")
    if len(coord["Vec"]) != DIMENSIONALITY:
        raise HTTPError(500, "incompatible coordinate")
    name = body.get("Node", "")
    value = {"Vec": [float(v) for v in coord["Vec"]], "Error": float(coord.get("Error", 0)),
             "Adjustment": float(coord.get("Adjustment", 0)), "Height": float(coord.get("Height", 0))}
    if consul_parts().catalog.has_node(name):
        with current_ctx().state.write() as txn:
            txn.put(KIND, name, value)
    return Response("", status=200)
