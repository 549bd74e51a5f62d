"""The agent's HTTP layer cannot be starved: idle connections, pending blocking queries and open
/ui/events streams hold no thread, so the APIs keep answering and writes still reach watchers.

The load is raw sockets (a request sent, its answer not read yet), as many browsers and watchers
would hold them. The checks are liveness with generous timeouts, not timings.
"""
from __future__ import annotations

import socket
import threading
from contextlib import ExitStack
from typing import Any

import pytest
import requests

from support.agents import RunningAgent
from support.waiting import wait_until

IDLE = 200
BLOCKING = 100
STREAMS = 40
LIVENESS_TIMEOUT_S = 10.0


def open_conn(port: int, request: bytes | None, stack: ExitStack) -> socket.socket:
    sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=30))
    if request is not None:
        sock.sendall(request)
    return sock


def get_request(path: str, port: int) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


def read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.alone  # its load is the point: nothing else may add to it or suffer from it
def test_idle_connections_blocking_queries_and_event_streams_do_not_starve_the_apis(
        running_agent: RunningAgent) -> None:
    consul, port = running_agent.consul_addr, running_agent.consul_port
    requests.put(f"{consul}/v1/kv/starve/key", data=b"v0", timeout=10).raise_for_status()
    index = int(requests.get(f"{consul}/v1/kv/starve/key", timeout=10).headers["X-Consul-Index"])
    with ExitStack() as stack:
        for _ in range(IDLE):
            open_conn(port, None, stack)
        blocked = [open_conn(port, get_request(f"/v1/kv/starve/key?index={index}&wait=60s", port), stack)
                   for _ in range(BLOCKING)]
        for _ in range(STREAMS):
            open_conn(port, get_request("/ui/events", port), stack)
        # Liveness of both APIs under that load.
        assert requests.get(f"{consul}/v1/status/leader", timeout=LIVENESS_TIMEOUT_S).status_code == 200
        assert requests.get(f"{running_agent.nomad_addr}/v1/status/leader", timeout=LIVENESS_TIMEOUT_S).ok
        # A write still reaches a watcher that starts now, and every pending one.
        seen: dict[str, Any] = {}

        def watch() -> None:
            resp = requests.get(f"{consul}/v1/kv/starve/key", params={"index": index, "wait": "60s", "raw": ""},
                                timeout=60)
            seen["value"] = resp.content

        watcher = threading.Thread(target=watch)
        watcher.start()
        assert requests.put(f"{consul}/v1/kv/starve/key", data=b"v1", timeout=LIVENESS_TIMEOUT_S).json() is True
        watcher.join(60)
        assert seen.get("value") == b"v1"
        heads = [read_head(sock) for sock in blocked]
        not_ok = [h[:40] for h in heads if not h.startswith(b"HTTP/1.1 200")]
        assert not_ok == []


@pytest.mark.alone  # three waves of a hundred connections
def test_a_blocking_query_whose_client_left_frees_its_place(running_agent: RunningAgent) -> None:
    consul, port = running_agent.consul_addr, running_agent.consul_port
    requests.put(f"{consul}/v1/kv/left/key", data=b"v0", timeout=10).raise_for_status()
    index = int(requests.get(f"{consul}/v1/kv/left/key", timeout=10).headers["X-Consul-Index"])
    for _ in range(3):  # three waves of abandoned 10-minute blocking queries, more than any thread pool
        with ExitStack() as stack:
            for _ in range(BLOCKING):
                open_conn(port, get_request(f"/v1/kv/left/key?index={index}&wait=10m", port), stack)
            assert requests.get(f"{consul}/v1/status/leader", timeout=LIVENESS_TIMEOUT_S).ok
    assert requests.get(f"{consul}/v1/kv/left/key?raw", timeout=LIVENESS_TIMEOUT_S).content == b"v0"


def test_a_client_that_never_finishes_its_headers_is_disconnected(running_agent: RunningAgent) -> None:
    with socket.create_connection(("127.0.0.1", running_agent.consul_port), timeout=60) as sock:
        sock.sendall(b"GET /v1/status/leader HTTP/1.1\r\nHost: 127.0.0.1")  # and nothing more (slowloris)
        try:
            received = sock.recv(4096)
        except ConnectionResetError:
            received = b""  # a reset closes the connection as surely as a FIN
        except TimeoutError:
            pytest.fail("still open after 60 s")
        assert received == b""  # closed by the server well within the minute


def test_a_disconnecting_client_cancels_its_blocking_query(tmp_path: Any) -> None:
    """In process, to see the agent's side: the waits of clients that left are gone at once."""
    from support.agents import InProcessAgent

    agent = InProcessAgent(tmp_path)
    try:
        port = int(agent.addr.rsplit(":", 1)[1])
        index = int(requests.get(f"{agent.addr}/v1/jobs", timeout=10).headers["X-Nomad-Index"])
        with ExitStack() as stack:
            for _ in range(50):
                open_conn(port, get_request(f"/v1/jobs?index={index}&wait=5m", port), stack)
            wait_until(lambda: agent.ctx.state.async_waiters == 50, 20, what="50 blocking queries waiting")
        wait_until(lambda: agent.ctx.state.async_waiters == 0, 20, what="their waits cancelled")
    finally:
        agent.close()
