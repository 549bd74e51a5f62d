"""Serve ASGI apps (the agent's Nomad and Consul apps, the UI) with hypercorn in one event loop in one thread.

Blocking queries and event streams are awaits on that loop, so a thousand of them hold no thread;
Flask-style sync views run in the loop's default executor (`EXECUTOR_THREADS`). Sockets are bound
by the caller first (`bind_socket`), so "port in use" is known before anything else starts and a
port 0 is resolved before the app that needs its own address is built.

Idle and slow clients are bounded: a connection with no request in flight (idle keep-alive, or
still sending its headers) is closed after `IDLE_TIMEOUT_S`; a request body must arrive within
Quart's BODY_TIMEOUT. A request in flight is never cut: a blocking query waits up to 10 minutes.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets
from hypercorn.utils import wrap_app

log = logging.getLogger("nomadmesh.http")

IDLE_TIMEOUT_S = 20.0  # hypercorn's keep-alive timer also runs while a request's headers arrive
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


def _config() -> Config:
    config = Config()
    config.keep_alive_timeout = IDLE_TIMEOUT_S
    config.graceful_timeout = SHUTDOWN_GRACE_S
    config.backlog = BACKLOG
    config.accesslog = None
    config.errorlog = log
    config.include_server_header = False
    return config


class HttpServers:
    """`start([(app, socket), ...])` serves until `stop()`; both may be called from any thread."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
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
            asyncio.run(self._main(served))
        except BaseException as e:  # reported to start() if it happens before serving
            self._failure = e
            log.exception("HTTP server loop ended")
        finally:
            self._ready.set()

    async def _main(self, served: list[tuple[Any, socket.socket]]) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.set_default_executor(ThreadPoolExecutor(EXECUTOR_THREADS, thread_name_prefix="http-sync"))
        self._stop = asyncio.Event()
        config = _config()
        serving = [worker_serve(wrap_app(app, config.wsgi_max_body_size, "asgi"), config,
                                sockets=Sockets([], [sock], []), shutdown_trigger=self._stop.wait)
                   for app, sock in served]
        self._loop.call_soon(self._ready.set)
        await asyncio.gather(*serving)

    def stop(self, timeout: float = 10.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass  # the loop already ended
        if self._thread is not None:
            self._thread.join(timeout)
        for sock in self._sockets:
            sock.close()  # hypercorn closes its servers; a socket never served is closed here
        self._sockets = []

    def serve_forever(self) -> None:
        """Block the calling thread until the loop ends (`stop()` from a signal handler, say)."""
        if self._thread is not None:
            while self._thread.is_alive():
                self._thread.join(0.5)
