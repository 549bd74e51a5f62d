"""What Prometheus' Consul service discovery (`consul_sd_configs`) hands its relabelling, served over
Prometheus' HTTP service discovery (`http_sd_configs`).

Debian's prometheus is built without Consul SD ("Disable Consul SD until its Debian package is back
in shape", its changelog), so a test of a `consul_sd_configs` scrape config swaps that one line for
an `http_sd_configs` pointing here, and keeps its relabel_configs as written. The targets are built
as Prometheus' discovery/consul/consul.go builds them: one per instance of every catalog service
(/v1/catalog/services, then /v1/health/service/<name>), `__address__` the service address (else the
node's) and port, and these labels:

    __meta_consul_service, _dc, _address (the node's), _node, _tags (",a,b,"), _service_address,
    _service_port, _service_id, _health (aggregated), _service_metadata_<key>, _metadata_<node key>,
    _tagged_address_<node key> (the NODE's tagged addresses, not the service's)
"""
from __future__ import annotations

import http.server
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import requests

META = "__meta_consul_"


def _label(name: str) -> str:
    """Prometheus' strutil.SanitizeLabelName."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _health(checks: list[dict[str, Any]]) -> str:
    """Consul's HealthChecks.AggregatedStatus."""
    statuses = {c.get("Status") for c in checks}
    for status in ("maintenance", "critical", "warning"):
        if status in statuses:
            return status
    return "passing"


def targets(consul_addr: str) -> list[dict[str, Any]]:
    """The HTTP SD target groups Consul SD would give for the catalog at `consul_addr`."""
    dc = requests.get(f"{consul_addr}/v1/agent/self", timeout=5).json()["Config"]["Datacenter"]
    out = []
    for name in sorted(requests.get(f"{consul_addr}/v1/catalog/services", timeout=5).json()):
        for row in requests.get(f"{consul_addr}/v1/health/service/{quote(name, safe='')}", timeout=5).json():
            node, svc = row["Node"], row["Service"]
            labels = {f"{META}service": name, f"{META}dc": dc, f"{META}address": node["Address"],
                      f"{META}node": node["Node"], f"{META}tags": "," + ",".join(svc.get("Tags") or []) + ",",
                      f"{META}service_address": svc.get("Address") or "", f"{META}service_port": str(svc["Port"]),
                      f"{META}service_id": svc["ID"], f"{META}health": _health(row.get("Checks") or [])}
            labels.update({f"{META}metadata_{_label(k)}": v for k, v in (node.get("Meta") or {}).items()})
            labels.update({f"{META}service_metadata_{_label(k)}": v for k, v in (svc.get("Meta") or {}).items()})
            labels.update({f"{META}tagged_address_{_label(k)}": v
                           for k, v in (node.get("TaggedAddresses") or {}).items()})
            out.append({"targets": [f"{svc.get('Address') or node['Address']}:{svc['Port']}"], "labels": labels})
    return out


@contextmanager
def serving(consul_addr: str) -> Iterator[str]:
    """An HTTP SD endpoint answering `targets(consul_addr)` on every request; yields its URL."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                body, status = json.dumps(targets(consul_addr)).encode(), 200
            except (requests.RequestException, KeyError, ValueError) as e:
                body, status = str(e).encode(), 503
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
