"""The agent's HTTP/1.1 answers, byte for byte where clients look: a status line with its reason
phrase (`HTTP/1.1 200 OK`, as Consul's and Nomad's Go servers send it; h2load counts a bare
`HTTP/1.1 200 ` as a failure), several requests on one kept-alive connection. Raw sockets, so
no client library fills anything in."""
from __future__ import annotations

import socket

import pytest

from support.agents import RunningAgent


def _exchange(sock: socket.socket, path: str, port: int) -> bytes:
    """Send one GET and read its whole answer (headers + Content-Length body); the head is returned."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before the answer to {path}: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the body"
        body += chunk
    return head


@pytest.mark.parametrize("api", ["consul", "nomad"])
def test_status_lines_carry_the_reason_phrase_on_one_kept_alive_connection(
        module_agent: RunningAgent, api: str) -> None:
    port = module_agent.consul_port if api == "consul" else module_agent.nomad_port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        heads = [_exchange(sock, path, port) for path in
                 ("/v1/status/leader", "/v1/no-such-endpoint", "/v1/status/leader")]
    assert [h.split(b"\r\n", 1)[0] for h in heads] == [
        b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found", b"HTTP/1.1 200 OK"]


def test_a_refused_cross_site_request_says_forbidden(module_agent: RunningAgent) -> None:
    port = module_agent.consul_port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /v1/status/leader HTTP/1.1\r\nHost: evil.example\r\n\r\n")
        assert sock.recv(4096).split(b"\r\n", 1)[0] == b"HTTP/1.1 403 Forbidden"
