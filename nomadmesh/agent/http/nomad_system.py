"""/v1/system/gc and /v1/system/reconcile/summaries (PUT only; 200 with an empty body, as Nomad).

The GC runs at once, in one transaction (Nomad enqueues a forced core evaluation that does the
same a moment later). Job summaries are computed from the allocations on every read here, so
there is nothing to reconcile: the endpoint exists for the clients that call it.
"""
from __future__ import annotations

import logging

from quart import Blueprint, Response

from nomadmesh.agent.http.nomad_ctx import ctx, notify
from nomadmesh.agent.nomad.gc import garbage_collect

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
