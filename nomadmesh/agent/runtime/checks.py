"""Consul-style health checks run by the agent: http and tcp, each on its own interval and timeout.

Semantics follow Consul's agent/checks:
- every check starts "critical" (Consul's default) and runs at once when added;
- http: a GET (or the given method); 2xx is passing, 429 Too Many Requests is warning, anything
  else or an error is critical; output "HTTP GET <url>: 200 OK Output: <first 4 KiB of body>";
- tcp: a connect; "TCP connect <addr>: Success" or the error.
`on_status(check_id, status, output)` is called only when status or output changes.

One thread per check keeps a slow check (up to its timeout) from delaying the others.
"""
from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.client import responses

import requests

log = logging.getLogger("nomadmesh.agent.checks")

PASSING, WARNING, CRITICAL = "passing", "warning", "critical"
OUTPUT_LIMIT = 4096  # Consul keeps the first 4 KiB of a check's output
StatusCallback = Callable[[str, str, str], None]


@dataclass(frozen=True)
class CheckSpec:
    check_id: str
    type: str  # "http" or "tcp"
    interval_s: float = 10.0
    timeout_s: float = 2.0
    http: str = ""  # full URL for http checks
    tcp: str = ""  # "host:port" for tcp checks
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    tls_skip_verify: bool = False

    def __post_init__(self) -> None:
        if self.type not in ("http", "tcp"):
            raise ValueError(f"check {self.check_id}: unsupported type {self.type!r} (http or tcp)")
        if self.type == "http" and not self.http:
            raise ValueError(f"check {self.check_id}: http check needs a URL")
        if self.type == "tcp" and not self.tcp:
            raise ValueError(f"check {self.check_id}: tcp check needs an address")
        if self.interval_s <= 0 or self.timeout_s <= 0:
            raise ValueError(f"check {self.check_id}: interval and timeout must be positive")


def run_http(spec: CheckSpec) -> tuple[str, str]:
    headers = {"User-Agent": "Consul Health Check", "Accept": "text/plain, text/*, */*", **spec.headers}
    try:
        with requests.Session() as session:
            # Checks target the services' own addresses (loopback, bridge IPs): an HTTP proxy from
            # the environment would answer for them and make a dead service look alive.
            session.trust_env = False
            with session.request(spec.method, spec.http, headers=headers, timeout=spec.timeout_s,
                                 verify=not spec.tls_skip_verify, stream=True) as resp:
                body = resp.raw.read(OUTPUT_LIMIT, decode_content=True) or b""
    except requests.RequestException as e:
        return CRITICAL, f'{spec.method.capitalize()} "{spec.http}": {_reason(e)}'
    text = body.decode("utf-8", "replace")
    status_line = f"{resp.status_code} {resp.reason or responses.get(resp.status_code, '')}".rstrip()
    output = f"HTTP {spec.method} {spec.http}: {status_line} Output: {text}"
    if 200 <= resp.status_code < 300:
        return PASSING, output
    if resp.status_code == 429:
        return WARNING, output
    return CRITICAL, output


def _reason(e: BaseException) -> str:
    """The root cause in a few words ("connection refused", "timeout"), not requests' nested repr."""
    if isinstance(e, requests.Timeout):
        return "timeout awaiting response"
    seen: set[int] = set()
    todo: list[BaseException] = [e]
    while todo:  # requests wraps urllib3 wraps socket errors: find the one with an errno
        cur = todo.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.strerror:
            return cur.strerror.lower()
        nxt = [getattr(cur, "reason", None), cur.__cause__, cur.__context__,
               *[a for a in cur.args if isinstance(a, BaseException)]]
        todo.extend(x for x in nxt if isinstance(x, BaseException))
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def run_tcp(spec: CheckSpec) -> tuple[str, str]:
    host, _, port = spec.tcp.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=spec.timeout_s):
            pass
    except (OSError, ValueError) as e:
        return CRITICAL, f"dial tcp {spec.tcp}: {e}"
    return PASSING, f"TCP connect {spec.tcp}: Success"


def run_once(spec: CheckSpec) -> tuple[str, str]:
    return run_http(spec) if spec.type == "http" else run_tcp(spec)


class _CheckThread:
    def __init__(self, spec: CheckSpec, report: Callable[[CheckSpec, str, str], None]):
        self.spec = spec
        self._report = report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"check-{spec.check_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                status, output = run_once(self.spec)
            except Exception as e:  # a check must never kill its thread
                log.exception("check %s failed to run", self.spec.check_id)
                status, output = CRITICAL, str(e)
            if self._stop.is_set():
                return
            self._report(self.spec, status, output[:OUTPUT_LIMIT + 200])
            self._stop.wait(self.spec.interval_s)


class CheckRunner:
    """Runs checks and reports changes. add() replaces a check with the same id."""

    def __init__(self, on_status: StatusCallback):
        self._on_status = on_status
        self._lock = threading.Lock()
        self._threads: dict[str, _CheckThread] = {}
        self._last: dict[str, tuple[str, str]] = {}

    def add(self, spec: CheckSpec) -> None:
        with self._lock:
            old = self._threads.pop(spec.check_id, None)
            if old is not None:
                old.stop()
            self._last[spec.check_id] = (CRITICAL, "")
            t = _CheckThread(spec, self._report)
            self._threads[spec.check_id] = t
        t.start()

    def remove(self, check_id: str) -> None:
        with self._lock:
            t = self._threads.pop(check_id, None)
            self._last.pop(check_id, None)
        if t is not None:
            t.stop()

    def status(self, check_id: str) -> tuple[str, str] | None:
        with self._lock:
            return self._last.get(check_id)

    def check_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._threads)

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            threads = list(self._threads.values())
            self._threads.clear()
        for t in threads:
            t.stop()
        for t in threads:
            t.join(timeout)

    def _report(self, spec: CheckSpec, status: str, output: str) -> None:
        with self._lock:
            if self._threads.get(spec.check_id) is None or self._threads[spec.check_id].spec is not spec:
                return  # removed or replaced while it ran
            if self._last.get(spec.check_id) == (status, output):
                return
            self._last[spec.check_id] = (status, output)
        self._on_status(spec.check_id, status, output)
