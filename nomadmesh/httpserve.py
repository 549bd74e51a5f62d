"""Serve ASGI apps (the agent's Nomad and Consul apps, the UI) with uvicorn in one event loop in one thread.

Blocking queries and event streams are awaits on that loop, so a thousand of them hold no thread;
Flask-style sync views run in the loop's default executor (`EXECUTOR_THREADS`). Sockets are bound
by the caller first (`bind_socket`), so "port in use" is known before anything else starts and a
port 0 is resolved before the app that needs its own address is built.

uvicorn with httptools (HTTP/1.1, keep-alive, status lines with their reason phrase as Consul's and
Nomad's Go servers send them) on uvloop: the HTTP layer costs about a third of what hypercorn's
h11 and h2 did per request. No HTTP/2: neither Consul's nor Nomad's HTTP API speaks h2c.

Idle and slow clients are bounded: a kept-alive connection with no request in flight is closed
after `IDLE_TIMEOUT_S`; a request body must arrive within Quart's BODY_TIMEOUT. A request in flight
is never cut: a blocking query waits up to 10 minutes, until `stop()` (open queries and streams get
SHUTDOWN_GRACE_S, then are cancelled).
"""
from __future__ import annotations

import asyncio
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("nomadmesh.http")

IDLE_TIMEOUT_S = 20.0
EXECUTOR_THREADS = 64  # sync views; the UI's reads call the agent's own API from these
BACKLOG = 1024
SHUTDOWN_GRACE_S = 0.5  # open blocking queries and event streams are cut after this on stop


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (OSError as the system says, EADDRINUSE included)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say so, and without it
    # every keep-alive answer waits ~40 ms (Nagle against the client's delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _BoundedHeaders(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, plus a deadline for a request's headers: from the connection
    (or the end of the previous answer) the client has IDLE_TIMEOUT_S to send them, however
    slowly it trickles bytes. uvicorn alone only times out kept-alive connections that send
    nothing, so a client that never finishes its headers (slowloris) would hold its socket forever."""

    _headers_due: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def on_headers_complete(self) -> None:
        self._cancel_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._await_headers()  # none pipelined: the next request's headers are due

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        self._cancel_deadline()
        self._headers_due = self.loop.call_later(IDLE_TIMEOUT_S, self._headers_late)

    def _cancel_deadline(self) -> None:
        if self._headers_due is not None:
            self._headers_due.cancel()
            self._headers_due = None

    def _headers_late(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


def _server(app: Any) -> uvicorn.Server:
    # uvicorn's start/stop chatter ("Started server process", "Application startup complete")
    # is not the agent's to log; its errors (an app that crashed) still are.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    config = uvicorn.Config(
        app, http=_BoundedHeaders, lifespan="on", access_log=False, log_config=None, server_header=False,
        proxy_headers=False,  # X-Forwarded-For is nobody's word here: the client is the socket's peer
        timeout_keep_alive=int(IDLE_TIMEOUT_S), backlog=BACKLOG,
        # Typed int, used as asyncio.wait_for's timeout: half a second is what the agent wants.
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S)  # type: ignore[arg-type]
    return uvicorn.Server(config)


class HttpServers:
    """`start([(app, socket), ...])` serves until `stop()`; both may be called from any thread."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[uvicorn.Server] = []
        self._sockets: list[socket.socket] = []
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    def start(self, served: list[tuple[Any, socket.socket]], name: str = "http") -> None:
        self._sockets = [sock for _, sock in served]
        self._thread = threading.Thread(target=self._run, args=(served,), name=name, daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._failure is not None:
            raise self._failure

    def _run(self, served: list[tuple[Any, socket.socket]]) -> None:
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(self._main(served))
        except BaseException as e:  # reported to start() if it happens before serving
            self._failure = e
            log.exception("HTTP server loop ended")
        finally:
            self._ready.set()

    async def _main(self, served: list[tuple[Any, socket.socket]]) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.set_default_executor(ThreadPoolExecutor(EXECUTOR_THREADS, thread_name_prefix="http-sync"))
        self._servers = [_server(app) for app, _ in served]
        serving = [asyncio.create_task(server.serve(sockets=[sock]))
                   for server, (_, sock) in zip(self._servers, served, strict=True)]
        while not all(server.started for server in self._servers):
            if any(task.done() for task in serving):
                break  # one could not start (its app's startup failed): gather says why
            await asyncio.sleep(0.005)
        self._loop.call_soon(self._ready.set)
        await asyncio.gather(*serving)

    def stop(self, timeout: float = 10.0) -> None:
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._exit)
            except RuntimeError:
                pass  # the loop already ended
        if self._thread is not None:
            self._thread.join(timeout)
        for sock in self._sockets:
            sock.close()  # uvicorn closes the sockets it served; a socket never served is closed here
        self._sockets = []

    def _exit(self) -> None:
        for server in self._servers:
            server.should_exit = True  # each stops accepting, lets requests in flight finish (grace), ends

    def serve_forever(self) -> None:
        """Block the calling thread until the loop ends (`stop()` from a signal handler, say)."""
        if self._thread is not None:
            while self._thread.is_alive():
                self._thread.join(0.5)
