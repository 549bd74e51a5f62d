"""Consul's `GET /v1/agent/metrics` (JSON, or `?format=prometheus`), and the request timings behind it.

`install(app)` times every Consul API request into the agent's MetricsSink as Consul does
(`consul.api.http`, milliseconds, labelled with the method and the route's path with '/' -> '_',
e.g. `v1_kv_` for any key). Gauges are counted from the state when asked: Consul's `consul.state.*`
figures, the leader flag, and the process's threads and resident memory under Consul's runtime names
(`num_goroutines` counts Python threads here).
"""
from __future__ import annotations

import os
import threading
import time
from collections import Counter

from quart import Blueprint, Quart, Response, g, request

from nomadmesh.agent.consul import config_store
from nomadmesh.agent.consul.metrics import Gauge
from nomadmesh.agent.http.common import json_response
from nomadmesh.agent.http.parts import consul_parts

bp = Blueprint("consul_metrics", __name__)

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the exposition format Consul serves


def install(app: Quart) -> None:
    app.register_blueprint(bp)

    @app.before_request
    async def _start_timer() -> None:
        g.nomadmesh_started = time.perf_counter()

    @app.after_request
    async def _record(response: Response) -> Response:
        started = g.get("nomadmesh_started")
        if started is not None:
            rule = request.url_rule.rule if request.url_rule is not None else request.path
            path = rule.split("<", 1)[0].strip("/").replace("/", "_") + ("_" if "<" in rule else "")
            consul_parts().metrics.add_sample("consul.api.http", (time.perf_counter() - started) * 1000,
                                              {"method": request.method, "path": path})
        return response


def gauges() -> list[Gauge]:
    parts = consul_parts()
    state = parts.ctx.state
    services = state.values("service")
    entries = Counter(r.key.split("/", 1)[0] for r in state.records(config_store.KIND))
    out = [
        Gauge("consul.runtime.num_goroutines", threading.active_count()),
        Gauge("consul.runtime.alloc_bytes", _resident_bytes()),
        Gauge("consul.server.isLeader", 1),
        Gauge("consul.autopilot.healthy", 1),
        Gauge("consul.state.nodes", 1),
        Gauge("consul.state.services", len({s["Service"] for s in services})),
        Gauge("consul.state.service_instances", len(services)),
        Gauge("consul.state.kv_entries", len(state.records("kv"))),
    ]
    out += [Gauge("consul.state.config_entries", n, (("kind", kind),)) for kind, n in sorted(entries.items())]
    return out


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@bp.get("/v1/agent/metrics")
def metrics() -> Response:
    sink = consul_parts().metrics
    if request.args.get("format") == "prometheus":  # any other format is JSON, as in Consul
        return Response(sink.prometheus(gauges()), status=200, content_type=PROMETHEUS_TYPE)
    return json_response(sink.display(gauges()))
