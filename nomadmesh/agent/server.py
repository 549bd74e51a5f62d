"""The dev agent process: state, catalog, scheduler and the two HTTP APIs, started and stopped in order.

Start: build the parts (agent/build.py: open the context, construct every part), bind both HTTP ports
(so a port in use fails before anything runs), start the catalog (its checks), the scheduler (which
reconciles what the state says with what runs), register the `--config-dir` services, then serve: both
apps (Quart) with uvicorn in one event loop in one thread (nomadmesh.httpserve), so blocking queries
and event streams hold no thread.
Stop, on SIGINT/SIGTERM: the reverse — stop serving, stop the scheduler with its tasks and namespaces
(like `nomad agent -dev`), stop the checks, close the state. A SIGKILL stops nothing; the next start
adopts what still runs.
"""
from __future__ import annotations

import errno
import gc
import logging
import resource
import signal
import socket
import threading
from types import FrameType
from typing import Any

from nomadmesh.agent.build import AgentParts, build_agent
from nomadmesh.agent.connect.plane import ConnectRuntime
from nomadmesh.agent.consul.catalog import Catalog
from nomadmesh.agent.consul.dns_server import DnsServer
from nomadmesh.agent.context import AgentConfig, AgentContext
from nomadmesh.agent.nomad.scheduler import Scheduler
from nomadmesh.errors import AgentError
from nomadmesh.httpserve import HttpServers, bind_socket

log = logging.getLogger("nomadmesh.agent")

def raise_open_files_limit() -> None:
    """Every open connection (idle, blocking query, event stream) is a file descriptor: raise the
    soft limit to the hard one, as Go programs (Consul, Nomad) do at start since Go 1.19."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            log.debug("cannot raise the open files limit from %d to %d", soft, hard)


class Agent:
    """One dev agent. `start()` then `wait()` / `stop()`; or `run()` which does all three."""

    def __init__(self, config: AgentConfig):
        self.config = config
        self.parts: AgentParts | None = None  # built by start()
        self._http = HttpServers()
        self._bound: list[socket.socket] = []
        self._stop_requested = threading.Event()
        self._stopped = False

    # --- the parts, once started ---------------------------------------------------------------

    def _built(self) -> AgentParts:
        if self.parts is None:
            raise AgentError("the agent is not started")
        return self.parts

    @property
    def ctx(self) -> AgentContext:
        return self._built().ctx

    @property
    def catalog(self) -> Catalog:
        return self._built().catalog

    @property
    def scheduler(self) -> Scheduler:
        return self._built().scheduler

    @property
    def connect(self) -> ConnectRuntime:
        """Connect's CA, proxy manager and xDS server."""
        return self._built().connect

    # --- start --------------------------------------------------------------------------------

    def start(self) -> None:
        cfg = self.config
        if cfg.default_policy not in ("allow", "deny"):
            raise AgentError(f"--default-policy: must be allow or deny, not {cfg.default_policy!r}")
        self.parts = parts = build_agent(cfg)
        ctx = parts.ctx
        raise_open_files_limit()
        try:
            # Bind both ports before anything starts running, so "port in use" leaves nothing behind.
            consul_sock = self._bind("Consul HTTP API", "--consul-port", cfg.consul_port)
            nomad_sock = self._bind("Nomad HTTP API", "--nomad-port", cfg.nomad_port)
            if parts.dns is not None:
                self._start_dns(parts.dns)
            parts.catalog.start()
            parts.sessions.start()
            parts.connect.start()  # before the scheduler: the sidecars it starts connect to the xDS server
            parts.scheduler.start()
            parts.config_dir.sync()
            self._http.start([(parts.consul_app, consul_sock), (parts.nomad_app, nomad_sock)], name="http")
        except BaseException:
            self.stop()
            raise
        log.info("agent started: node %s (%s), datacenter %s, data dir %s", cfg.node_name, ctx.node_id,
                 cfg.datacenter, cfg.data_dir)
        log.info("Nomad API on http://%s:%d, Consul API on http://%s:%d", cfg.bind, cfg.nomad_port, cfg.bind,
                 cfg.consul_port)

    def _bind(self, what: str, flag: str, port: int) -> socket.socket:
        try:
            sock = bind_socket(self.config.bind, port)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise AgentError(f"{what}: port {port} on {self.config.bind} is already in use "
                                 f"(choose another with {flag})") from None
            raise AgentError(f"{what}: cannot listen on {self.config.bind}:{port}: {e.strerror or e}") from None
        self._bound.append(sock)  # closed by stop() even if never served
        return sock

    def _start_dns(self, dns: DnsServer) -> None:
        try:
            dns.start()
        except OSError as e:
            where = f"{dns.bind}:{dns.port}"
            if e.errno == errno.EADDRINUSE:
                raise AgentError(f"DNS interface: port {where} is already in use "
                                 "(choose another with --dns-port, or -1 for none)") from None
            raise AgentError(f"DNS interface: cannot listen on {where}: {e.strerror or e}") from None

    # --- stop ---------------------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        self._stop_requested.set()

    def wait(self) -> None:
        while not self._stop_requested.wait(0.5):
            pass

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        log.info("agent stopping")
        self._http.stop()
        if self.parts is not None and self.parts.dns is not None:
            self.parts.dns.stop()
        for sock in self._bound:
            sock.close()
        self._bound.clear()
        parts = self.parts
        if parts is not None:
            try:
                parts.scheduler.stop(stop_tasks=True)
            except Exception:
                log.exception("stopping the scheduler")
            parts.connect.stop()
            parts.sessions.stop()
            parts.catalog.stop()
            parts.ctx.close()
        log.info("agent stopped")

    def run(self) -> None:
        """Start, serve until SIGINT or SIGTERM, stop cleanly."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            # What start-up built (modules, protobuf descriptors, the apps: ~90,000 objects) lives as long as
            # the agent process: out of the collector's sight, a full collection no longer stalls every
            # thread, xDS pushes included, for 100-170 ms (measured at load 8-10; bench/l7_push.py).
            gc.collect()
            gc.freeze()
            self.wait()
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        self.request_stop()

