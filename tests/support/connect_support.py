"""Builders for tests of connect and its users (like Consul's proxycfg/testing.go): a pinned CA,
snapshots, a keep-alive backend, free ports. Imported only by tests and benchmarks."""
from __future__ import annotations

import datetime as dt
import http.server
import threading
import urllib.parse
from dataclasses import replace
from functools import lru_cache
from typing import Any

import requests

from nomadmesh.agent.connect.ca import ConnectCA
from nomadmesh.agent.connect.snapshot import Address, ProxySnapshot, UpstreamSnap
from nomadmesh.agent.consul.discovery_chain import compile_chain
from support.net import free_port  # noqa: F401  (re-exported: the bench and the connect tests import it here)

CLUSTER_ID = "11111111-2222-3333-4444-555555555555"
DC = "dc1"


@lru_cache(maxsize=1)
def pinned_ca() -> ConnectCA:
    """One CA per test session: signing is cheap, but golden-ish checks want stable names."""
    return ConnectCA.generate(CLUSTER_ID, now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def snapshot(service: str, public_port: int = 21000, app_port: int = 8080, ca: ConnectCA | None = None,
             public_address: str = "0.0.0.0", **changes) -> ProxySnapshot:
    """A proxy snapshot for `service` with a fresh leaf; `changes` override any field."""
    ca = ca or pinned_ca()
    leaf = ca.sign_leaf(service, DC)
    snap = ProxySnapshot(
        proxy_id=f"{service}-sidecar-proxy",
        service=service,
        datacenter=DC,
        trust_domain=ca.trust_domain,
        public_listener=Address(public_address, public_port),
        local_app=Address("127.0.0.1", app_port),
        roots_pem=ca.root_pem,
        leaf_cert_pem=leaf.cert_pem,
        leaf_key_pem=leaf.key_pem,
    )
    return replace(snap, **changes) if changes else snap


def upstream(destination: str, port: int, endpoints: tuple[tuple[str, int], ...] = ()) -> UpstreamSnap:
    return UpstreamSnap(destination=destination, local_bind_port=port, endpoints=endpoints)


def unpack(any_msg: Any, cls: Any) -> Any:
    """The message of type `cls` packed in `any_msg` (an assertion error if it is another type)."""
    msg = cls()
    assert any_msg.Unpack(msg), f"not a {cls.__name__}: {any_msg.type_url}"
    return msg


def by_name(msgs: Any) -> dict[str, Any]:
    """Envoy resources by the name Envoy knows them by (a ClusterLoadAssignment by its cluster)."""
    return {(m.cluster_name if hasattr(m, "cluster_name") else m.name): m for m in msgs}


def envoy_admin_stats(admin_port: int, regex: str) -> dict[str, int]:
    """An Envoy's counters and gauges whose names match `regex`, from its admin interface."""
    url = f"http://127.0.0.1:{admin_port}/stats?filter={urllib.parse.quote(regex)}"
    out: dict[str, int] = {}
    for line in requests.get(url, timeout=5).text.splitlines():
        key, _, value = line.partition(": ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def chain_upstream(destination: str, port: int, entries: tuple[dict[str, Any], ...],
                   endpoints: dict[str, tuple[tuple[str, int], ...]]) -> UpstreamSnap:
    """An upstream whose discovery chain is compiled from `entries` (config entries as stored),
    with `endpoints` per chain target id (a target not named has none)."""
    table = {f"{e['Kind']}/{e['Name']}": e for e in entries}
    chain = compile_chain(destination, lambda kind, name: table.get(f"{kind}/{name}"), DC,
                          pinned_ca().trust_domain)
    return UpstreamSnap(destination, port, chain=chain,
                        target_endpoints=tuple((tid, endpoints.get(tid, ())) for tid in sorted(chain.targets)))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a test can hold a connection open
    disable_nagle_algorithm = True  # headers and body go in two sends: no 40 ms Nagle stall

    def do_GET(self) -> None:
        body = f"backend {self.server.name} {self.path}\n".encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


def start_backend(name: str) -> tuple[http.server.ThreadingHTTPServer, int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.name = name  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]
