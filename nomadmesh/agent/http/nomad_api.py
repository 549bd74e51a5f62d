"""The dev agent's Nomad HTTP API: one Quart app (asyncio), one blueprint per area.

    nomad_jobs.py   /v1/jobs, /v1/jobs/parse, /v1/job/<id>[/plan|versions|allocations|evaluations|deployment(s)]
    nomad_reads.py  allocations, evaluations, deployments, nodes, agent, status
    nomad_logs.py   /v1/client/fs/logs/<alloc>
    nomad_job_actions.py  /v1/job/<id>/stable|evaluate, /v1/validate/job
    nomad_alloc_actions.py  /v1/allocation/<id>/stop, /v1/client/allocation/<id>/signal|restart
    nomad_deployment_actions.py  /v1/deployment/promote|fail|pause|allocation-health/<id>
    nomad_namespaces.py  /v1/namespaces, /v1/namespace[/<name>]
    nomad_variables.py   /v1/vars, /v1/var/<path> (Nomad Variables)
    nomad_events.py /v1/event/stream
    nomad_nodes.py  /v1/node/<id>/drain|eligibility|evaluate|purge
    nomad_system.py /v1/system/gc, /v1/system/reconcile/summaries
    nomad_fs.py     /v1/client/fs/{ls,stat,cat,readat,stream}/<alloc>
    nomad_stats.py  /v1/client/stats, /v1/client/allocation/<alloc>/stats
    nomad_search.py /v1/search[/fuzzy], /v1/operator/raft/configuration, /v1/scaling/policies
    nomad_metrics.py /v1/metrics (gauges of the client's allocations and tasks)

Errors are plain text with Nomad's status codes; views read state through State and write through
nomadmesh.agent.nomad.jobs, then poke the scheduler.
"""
from __future__ import annotations

import logging

from quart import Quart, Response
from werkzeug.exceptions import HTTPException

from nomadmesh.agent.http import (
    nomad_alloc_actions,
    nomad_deployment_actions,
    nomad_events,
    nomad_fs,
    nomad_job_actions,
    nomad_jobs,
    nomad_logs,
    nomad_metrics,
    nomad_namespaces,
    nomad_nodes,
    nomad_reads,
    nomad_search,
    nomad_stats,
    nomad_system,
    nomad_variables,
)
from nomadmesh.agent.http.common import AnyCharPathConverter, load_body
from nomadmesh.agent.http.nomad_util import MAX_BODY_BYTES, HTTPError, text_error
from nomadmesh.agent.http.parts import EXTENSION, NomadParts
from nomadmesh.webguard import install as install_guard, own_address

log = logging.getLogger("nomadmesh.agent.nomad")


def create_nomad_app(parts: NomadParts) -> Quart:
    ctx = parts.ctx
    app = Quart("nomadmesh.nomad")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.url_map.converters["path"] = AnyCharPathConverter  # job IDs may hold '/' (%2F) and newlines
    app.extensions[EXTENSION] = parts
    install_guard(app, own_address(ctx.config.bind, ctx.config.nomad_port))
    app.before_request(load_body)  # after the guard: a refused request's body is never read
    app.register_blueprint(nomad_jobs.bp)
    app.register_blueprint(nomad_job_actions.bp)
    app.register_blueprint(nomad_alloc_actions.bp)
    app.register_blueprint(nomad_deployment_actions.bp)
    app.register_blueprint(nomad_reads.bp)
    app.register_blueprint(nomad_logs.bp)
    app.register_blueprint(nomad_namespaces.bp)
    app.register_blueprint(nomad_variables.bp)
    app.register_blueprint(nomad_events.bp)
    app.register_blueprint(nomad_nodes.bp)
    app.register_blueprint(nomad_system.bp)
    app.register_blueprint(nomad_fs.bp)
    app.register_blueprint(nomad_stats.bp)
    app.register_blueprint(nomad_search.bp)
    app.register_blueprint(nomad_metrics.bp)

    @app.errorhandler(HTTPError)
    async def _coded(e: HTTPError) -> Response:
        return text_error(e.status, e.message)

    @app.errorhandler(HTTPException)
    async def _http(e: HTTPException) -> Response:
        if e.code == 404:
            return text_error(404, "Invalid URL")
        if e.code == 405:
            return text_error(405, "Invalid method")
        if e.code == 413:
            return text_error(413, f"Request body too large (limit {MAX_BODY_BYTES} bytes)")
        return text_error(e.code or 500, e.description or e.name)

    @app.errorhandler(Exception)
    async def _crash(e: Exception) -> Response:
        # A bug must not take the agent down nor leak a traceback to clients; it goes to the log.
        log.exception("Nomad API request failed")
        return text_error(500, f"internal error: {type(e).__name__}: {e}")

    return app
