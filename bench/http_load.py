"""The agent's HTTP layer under watchers: N concurrent blocking queries + M idle connections while
`/v1/status/leader` is timed, and a KV write → blocking watcher latency (issue 10's targets:
leader p99 <= 20 ms with 1,000 + 200; watcher sees a write within 100 ms).

    .venv/bin/python bench/http_load.py            # 1,000 blocking queries + 200 idle connections
    .venv/bin/python bench/http_load.py --quick    # 200 + 50, few samples
    .venv/bin/python bench/http_load.py --json

The load is raw sockets: each blocking query is a sent `GET /v1/catalog/services?index=N&wait=5m`
whose answer is read at the end (after one catalog change wakes them all: `answered` counts the
200s); idle connections just connect. A request that gets no answer within TIMEOUT_S is counted
in `*_timeouts` and enters the percentiles as TIMEOUT_S (the old thread-pool server's fate).
No root needed: no job runs.
"""
from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agentkit import Agent, bridge_env, pct

TIMEOUT_S = 5.0
Figures = dict[str, Any]


def _connect(port: int, stack: ExitStack) -> socket.socket:
    sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S))
    sock.settimeout(60)
    return sock


def _get(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


def _open_many(port: int, n: int, request: bytes | None, stack: ExitStack) -> list[socket.socket]:
    """Up to `n` connections (each sending `request`), stopping at the first one not accepted."""
    out: list[socket.socket] = []
    for _ in range(n):
        try:
            sock = _connect(port, stack)
            if request is not None:
                sock.sendall(request)
        except OSError:
            break
        out.append(sock)
    return out


def _status_line(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, OSError):
        return b""
    return data.split(b"\r\n", 1)[0]


def _timed_leader(conn: http.client.HTTPConnection) -> float:
    t0 = time.perf_counter()
    try:
        conn.request("GET", "/v1/status/leader")
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise OSError(f"status {resp.status}")
    except (TimeoutError, OSError):
        conn.close()  # the next request reconnects
        return TIMEOUT_S * 1000
    return (time.perf_counter() - t0) * 1000


def _index(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return int(resp.headers.get("X-Consul-Index") or 1)
    finally:
        conn.close()


def _put(port: int, path: str, body: bytes) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        conn.request("PUT", path, body=body)
        conn.getresponse().read()
    finally:
        conn.close()


def _watch_latency(port: int, key: str, n: int) -> list[float]:
    """Per sample: a blocking watcher on `key`, then a write of it; ms from the write sent to the
    watcher's answer received."""
    out: list[float] = []
    for i in range(n):
        try:
            index = _index(port, f"/v1/kv/{key}")
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as watcher:
                watcher.sendall(_get(port, f"/v1/kv/{key}?index={index}&wait=30s"))
                time.sleep(0.05)  # let the agent start waiting (it answers at once if it is already moved)
                t0 = time.perf_counter()
                _put(port, f"/v1/kv/{key}", str(i).encode())
                line = _status_line(watcher, TIMEOUT_S)
        except OSError:  # the server did not answer the set-up in time
            line = b""
        out.append((time.perf_counter() - t0) * 1000 if line.startswith(b"HTTP/1.1 200") else TIMEOUT_S * 1000)
    return out


def http_load_figures(blocking: int = 1000, idle: int = 200, samples: int = 300, watches: int = 30) -> Figures:
    with tempfile.TemporaryDirectory(prefix="nm-bench-http-") as tmp:
        agent = Agent(Path(tmp) / "data", bridge_env()).start()
        try:
            return _measure(agent.consul_port, blocking, idle, samples, watches)
        finally:
            agent.stop()


def _measure(port: int, blocking: int, idle: int, samples: int, watches: int) -> Figures:
    _put(port, "/v1/agent/service/register", json.dumps({"Name": "bench-web", "Port": 9}).encode())
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    quiet = [_timed_leader(conn) for _ in range(samples)]
    index = _index(port, "/v1/catalog/services")
    with ExitStack() as stack:
        opened = _open_many(port, idle, None, stack)
        query = _get(port, f"/v1/catalog/services?index={index}&wait=5m")
        held = _open_many(port, blocking, query, stack) if len(opened) == idle else []
        # Connections the server did not accept within TIMEOUT_S (its backlog full): not retried.
        refused = idle + blocking - len(opened) - len(held)
        time.sleep(1.0)  # every query has reached the agent and waits
        loaded = [_timed_leader(conn) for _ in range(samples)]
        watched = _watch_latency(port, "bench/watched", watches)
        # One catalog change wakes every held query: each must answer.
        try:
            _put(port, "/v1/agent/service/register", json.dumps({"Name": "bench-web2", "Port": 9}).encode())
        except OSError:
            pass  # not answered in time: the held queries are then counted as unanswered
        deadline = time.monotonic() + 2 * TIMEOUT_S  # for all of them together, not each
        answered = sum(_status_line(sock, max(0.01, deadline - time.monotonic())).startswith(b"HTTP/1.1 200")
                       for sock in held)
    conn.close()
    return {
        "http_blocking_queries": blocking, "http_idle_conns": idle,
        "http_leader_quiet_p50_ms": pct(quiet, 50), "http_leader_quiet_p99_ms": pct(quiet, 99),
        "http_leader_p50_ms": pct(loaded, 50), "http_leader_p99_ms": pct(loaded, 99),
        "http_leader_timeouts": sum(v >= TIMEOUT_S * 1000 for v in loaded),
        "http_kv_watch_p50_ms": pct(watched, 50), "http_kv_watch_p99_ms": pct(watched, 99),
        "http_kv_watch_timeouts": sum(v >= TIMEOUT_S * 1000 for v in watched),
        "http_blocking_answered": answered, "http_conns_refused": refused,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="200 blocking queries + 50 idle, few samples")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    figs = http_load_figures(200, 50, 40, 5) if args.quick else http_load_figures()
    if args.json:
        print(json.dumps(figs))
        return
    for key, value in figs.items():
        print(f"{key:28} {value:.1f}" if isinstance(value, float) else f"{key:28} {value}")


if __name__ == "__main__":
    main()
