"""/v1/client/stats and /v1/client/allocation/<id>/stats: resource usage measured from /proc.

The shapes are Nomad's (HostStats; AllocResourceUsage of TaskResourceUsage, each with its Pids),
what a raw_exec task reports without cgroups: RSS and Swap, System/User Mode and Percent.
"""
from __future__ import annotations

from quart import Blueprint, Response, request

from nomadmesh.agent.http.nomad_ctx import ctx, scheduler
from nomadmesh.agent.http.nomad_util import HTTPError, reply

bp = Blueprint("nomad_stats", __name__)


@bp.get("/v1/client/stats")
def host_stats() -> Response:
    node_id = request.args.get("node_id", "")
    if node_id and node_id != ctx().node_id:
        raise HTTPError(404, f"Unknown node {node_id}")  # the dev agent is the only node
    return reply(scheduler().platform.host_stats())


@bp.get("/v1/client/allocation/<alloc_id>/stats")
def alloc_stats(alloc_id: str) -> Response:
    rec = ctx().state.get("alloc", alloc_id)
    if rec is None:
        raise HTTPError(404, f'Unknown allocation "{alloc_id}"')
    return reply(scheduler().platform.alloc_stats(rec.value, request.args.get("task", "")))
