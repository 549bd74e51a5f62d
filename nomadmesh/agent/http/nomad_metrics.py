"""/v1/metrics: the Nomad agent's telemetry in go-metrics' in-memory format (consul/metrics.py shapes
it), with the client's allocation and task gauges as Nomad's client emits them (emitClientMetrics),
read from the state when asked. `?format=prometheus` is refused as a Nomad agent without
`telemetry { prometheus_metrics = true }` refuses it (415 "Prometheus is not enabled")."""
from __future__ import annotations

from quart import Blueprint, Response, request

from nomadmesh.agent.consul.metrics import Gauge, MetricsSink
from nomadmesh.agent.http.nomad_ctx import ctx
from nomadmesh.agent.http.nomad_util import HTTPError, reply

bp = Blueprint("nomad_metrics", __name__)
_SINK = MetricsSink()  # the Nomad side records no timings of its own yet: gauges only


def _gauges() -> list[Gauge]:
    c = ctx()
    node = c.state.get("node", c.node_id)
    labels = (("datacenter", c.config.datacenter), ("node_class", ""), ("node_id", c.node_id),
              ("node_pool", (node.value.get("NodePool") if node else None) or "default"))
    allocs = [a for a in c.state.values("alloc") if a.get("NodeID") == c.node_id]
    counts = dict.fromkeys(("blocked", "migrating", "pending", "running", "terminal"), 0)
    tasks = dict.fromkeys(("pending", "running", "dead"), 0)
    for a in allocs:
        status = a["ClientStatus"]
        if status in ("pending", "running"):
            counts[status] += 1
        elif status in ("complete", "failed"):
            counts["terminal"] += 1
        for ts in (a.get("TaskStates") or {}).values():
            if ts.get("State") in tasks:
                tasks[ts["State"]] += 1
    return ([Gauge(f"nomad.client.allocations.{k}", float(v), labels) for k, v in counts.items()]
            + [Gauge(f"nomad.client.tasks.{k}", float(v), labels) for k, v in tasks.items()])


@bp.get("/v1/metrics")
def metrics() -> Response:
    if request.args.get("format") == "prometheus":
        raise HTTPError(415, "Prometheus is not enabled")
    return reply(_SINK.display(_gauges()))
