"""Dev-agent-only: a Nomad-run sidecar's live Envoy figures, and the mesh's traffic, on the Consul port.

    GET /v1/nomadmesh/sidecar/<sidecar service id>/stats
    GET /v1/nomadmesh/sidecar/<sidecar service id>/stats?format=prometheus[&filter=<RE2 over stat names>]
        Envoy's own /stats/prometheus text (what Prometheus scrapes from a sidecar on a real cluster)
    GET /v1/nomadmesh/traffic[?window=<seconds>]   per edge and per service over the last minute
                                                   (nomadmesh.mesh.traffic's Figures as JSON)

Not a Consul endpoint (hence the prefix): a real cluster has no way to it, because each sidecar's
Envoy admin listens only inside its allocation's network namespace. nomad/sidecar_stats.py enters
that namespace for a moment and caches the answer for ~1 s.

404: no such service, or not a sidecar proxy. 503 with a one-line reason: the sidecar is not run
by this agent's Nomad, its allocation or task is not running, or its admin did not answer.
"""
from __future__ import annotations

import re2
from quart import Blueprint, Response, request

from nomadmesh.agent.http.common import HTTPError, json_response
from nomadmesh.agent.http.parts import consul_parts

bp = Blueprint("consul_sidecar_stats", __name__)
MAX_FILTER_CHARS = 512


def _filter() -> str | None:
    """The `filter` parameter, refused (400) unless it is a short RE2 expression, as Envoy's admin takes it."""
    text = request.args.get("filter")
    if text is None:
        return None
    if len(text) > MAX_FILTER_CHARS:
        raise HTTPError(400, f"filter: longer than {MAX_FILTER_CHARS} characters")
    try:
        re2.compile(text)
    except re2.error as e:
        raise HTTPError(400, f"filter: not a regular expression: {e}") from None
    return text


@bp.get("/v1/nomadmesh/sidecar/<path:sidecar_id>/stats")
def sidecar_stats(sidecar_id: str) -> Response:
    if request.args.get("format") == "prometheus":
        status, text = consul_parts().sidecar_stats.prometheus(sidecar_id, _filter())
        if status != 200:
            raise HTTPError(status, text)
        return Response(text, mimetype="text/plain; version=0.0.4")
    status, body = consul_parts().sidecar_stats.get(sidecar_id)
    if status != 200:
        raise HTTPError(status, body)
    return json_response(body)


@bp.get("/v1/nomadmesh/traffic")
def traffic() -> Response:
    raw = request.args.get("window", "")
    try:
        window = float(raw) if raw else None
    except ValueError:
        raise HTTPError(400, f"window: {raw!r} is not a number of seconds") from None
    if window is not None and not 0 < window <= 3600:
        raise HTTPError(400, f"window: {raw} is not between 0 and 3600 seconds")
    return json_response(consul_parts().traffic.figures(window))
