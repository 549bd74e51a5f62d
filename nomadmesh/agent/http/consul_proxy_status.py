"""Dev-agent-only: what each sidecar's Envoy last refused, and whether it runs fail-closed.

    GET /v1/nomadmesh/proxies

Not a Consul endpoint (hence the prefix). One row per proxy the agent builds configuration for:

    {"ProxyID": ..., "Service": ..., "Connected": true,
     "FailClosed": true, "FailClosedLevel": 1,
     "LastNack": {"Type": "Listener", "TypeURL": ..., "Version": ..., "Names": [...],
                  "Detail": "<Envoy's error>", "Since": <epoch s>, "ResolvedAt": null}}

`FailClosed`: Envoy refused the proxy's listeners, so it is served a public listener that admits
no caller until a policy Envoy accepts is written (agent/connect/failclosed.py). `LastNack` stays
after recovery, with `ResolvedAt` set, so a refusal that came and went is still visible.
"""
from __future__ import annotations

from typing import Any

from quart import Blueprint, Response

from nomadmesh.agent.connect.plane import ConnectRuntime
from nomadmesh.agent.http.common import json_response
from nomadmesh.agent.http.parts import consul_parts

bp = Blueprint("consul_proxy_status", __name__)


def rows(runtime: ConnectRuntime) -> list[dict[str, Any]]:
    out = []
    for node in runtime.cache.nodes():
        resources = runtime.cache.get(node)
        if resources is None:
            continue  # removed meanwhile
        out.append({"ProxyID": node, "Service": resources.snapshot.service,
                    "Connected": node in runtime.xds.streams, **runtime.cache.status(node)})
    return out


@bp.get("/v1/nomadmesh/proxies")
def proxies() -> Response:
    return json_response(rows(consul_parts().connect))
