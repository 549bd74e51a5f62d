"""/v1/system/gc and /v1/system/reconcile/summaries (PUT only; 200 with an empty body, as Nomad),
and /v1/client/gc: the client's own garbage collection, which destroys the directories of its
finished allocations (the server keeps their records until the system GC, as Nomad's does).

The GC runs at once, in one transaction (Nomad enqueues a forced core evaluation that does the
same a moment later). Job summaries are computed from the allocations on every read here, so
there is nothing to reconcile: the endpoint exists for the clients that call it.
"""
from __future__ import annotations

import logging

from quart import Blueprint, Response, request

from nomadmesh.agent.http.common import HTTPError
from nomadmesh.agent.http.nomad_ctx import ctx, notify, scheduler
from nomadmesh.agent.nomad.gc import TERMINAL_CLIENT, garbage_collect

bp = Blueprint("nomad_system", __name__)
log = logging.getLogger("nomadmesh.agent.nomad")


@bp.put("/v1/system/gc")
def system_gc() -> Response:
    out = garbage_collect(ctx().state)
    log.info("forced GC: %d jobs, %d evaluations, %d allocations, %d deployments", len(out.jobs), len(out.evals),
             len(out.allocs), len(out.deployments))
    notify()
    return Response("", status=200)


@bp.put("/v1/system/reconcile/summaries")
def reconcile_summaries() -> Response:
    return Response("", status=200)


@bp.route("/v1/client/gc", methods=["GET", "PUT", "POST"])
def client_gc() -> Response:
    node_id = request.args.get("node_id", "")
    if node_id and node_id != ctx().node_id:
        raise HTTPError(500, f"Unknown node {node_id}")  # structs.NewErrUnknownNode
    finished = [a["ID"] for a in ctx().state.values("alloc") if a.get("ClientStatus") in TERMINAL_CLIENT]
    platform = scheduler().platform
    for alloc_id in finished:
        platform.remove_alloc_dir(alloc_id)
    log.info("client GC: removed the directories of %d finished allocations", len(finished))
    return Response("", status=200)
