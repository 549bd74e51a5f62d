"""The agent's DNS port (Consul's `ports.dns`, 8600 by default): UDP and TCP, answered by dns_answers.

Two threads, one per transport (socketserver, a thread per TCP connection); each request is parsed
and written by dnspython. Over UDP without EDNS at most 3 records are answered (Consul's default
`dns_config.udp_answer_limit`; the instances are shuffled, so each query names another few); an
answer still larger than the client's buffer (512 bytes, or its EDNS size) is sent empty with the
TC flag, so the client retries over TCP, as any DNS server does.
"""
from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rrset

from nomadmesh.agent.consul.dns_answers import DnsView, respond
from nomadmesh.agent.consul.metrics import MetricsSink

log = logging.getLogger("nomadmesh.agent.consul.dns")

UDP_DEFAULT_PAYLOAD = 512
UDP_ANSWER_LIMIT = 3  # Consul's dns_config.udp_answer_limit default
TCP_IDLE_S = 10.0  # a TCP client that sends nothing for this long is dropped


def answer_wire(wire: bytes, view: DnsView, max_size: int | None) -> bytes | None:
    """The response's wire form, or None for bytes that are not a DNS query (nothing is sent back)."""
    try:
        query = dns.message.from_wire(wire)
    except dns.exception.DNSException:
        return None
    response = respond(query, view)
    if max_size is None:
        return response.to_wire()
    if query.edns < 0:
        _limit_answers(response, UDP_ANSWER_LIMIT)
    limit = max(UDP_DEFAULT_PAYLOAD, query.payload if query.edns >= 0 else UDP_DEFAULT_PAYLOAD)
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        truncated = dns.message.make_response(query)
        truncated.flags |= dns.flags.TC | dns.flags.AA
        truncated.set_rcode(response.rcode())
        return truncated.to_wire()


def _limit_answers(response: dns.message.Message, limit: int) -> None:
    """Keep the first `limit` records of each answer RRset, and only the additional records
    (SRV targets' addresses) those still name."""
    kept_names: set[object] = set()
    for i, rrset in enumerate(response.answer):
        if len(rrset) > limit:
            response.answer[i] = dns.rrset.from_rdata_list(rrset.name, rrset.ttl, list(rrset)[:limit])
        kept_names.update(getattr(rd, "target", None) for rd in response.answer[i])
    response.additional = [r for r in response.additional if r.name in kept_names]


class _UDPServer(socketserver.ThreadingUDPServer):
    daemon_threads = True
    allow_reuse_address = True


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class DnsServer:
    """Serves `view()` (re-read per query) on `bind:port` over UDP and TCP until stop()."""

    def __init__(self, bind: str, port: int, view: Callable[[], DnsView], metrics: MetricsSink | None = None) -> None:
        self.bind, self.port, self._view = bind, port, view
        self._metrics = metrics
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Bind both transports (OSError when the port is taken), then serve in background threads."""
        sink = self._metrics

        def view() -> DnsView:
            return self._view()

        def timed(started: float, node: str) -> None:
            if sink is not None:  # Consul's timing of each query it answers
                sink.add_sample("consul.dns.domain_query", (time.perf_counter() - started) * 1000, {"node": node})

        class UDPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                started = time.perf_counter()
                data, sock = self.request
                current = view()
                out = answer_wire(data, current, max_size=UDP_DEFAULT_PAYLOAD)
                if out is not None:
                    sock.sendto(out, self.client_address)
                    timed(started, current.node_name)

        class TCPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.request
                conn.settimeout(TCP_IDLE_S)
                while True:
                    try:
                        query, _ = dns.query.receive_tcp(conn)
                    except (EOFError, OSError, dns.exception.DNSException):
                        return
                    started, current = time.perf_counter(), view()
                    dns.query.send_tcp(conn, respond(query, current))
                    timed(started, current.node_name)

        family = socket.AF_INET6 if ":" in self.bind else socket.AF_INET
        for cls, handler in ((_UDPServer, UDPHandler), (_TCPServer, TCPHandler)):
            try:
                server = type(cls.__name__, (cls,), {"address_family": family})((self.bind, self.port), handler)
            except OSError:
                self.stop()
                raise
            self._servers.append(server)
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                      name=f"dns-{type(server).__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("DNS interface on %s:%d (UDP and TCP)", self.bind, self.port)

    def stop(self) -> None:
        for server, thread in zip(self._servers, self._threads, strict=False):
            server.shutdown()
            thread.join(timeout=5)
        for server in self._servers:
            server.server_close()
        self._servers.clear()
        self._threads.clear()
