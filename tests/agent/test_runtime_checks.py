"""Health checks against real local servers: http statuses, tcp, timeouts, change-only callbacks."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nomadmesh.agent.runtime.checks import CRITICAL, PASSING, WARNING, CheckRunner, CheckSpec, run_once
from support.net import free_port


class _Handler(BaseHTTPRequestHandler):
    status = 200
    delay = 0.0

    def do_GET(self) -> None:
        time.sleep(type(self).delay)
        body = b"healthy " + b"x" * 5000 if self.path == "/big" else b"healthy"
        code = type(self).status
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("H", (_Handler,), {"status": 200, "delay": 0.0})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", handler
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("code,status", [(200, PASSING), (204, PASSING), (429, WARNING), (500, CRITICAL),
                                         (404, CRITICAL)])
def test_http_status_mapping(server, code: int, status: str) -> None:
    url, handler = server
    handler.status = code
    got, output = run_once(CheckSpec("c", "http", http=url + "/health", timeout_s=2))
    assert got == status
    assert output.startswith(f"HTTP GET {url}/health: {code} ")


def test_http_output_format_and_body_limit(server) -> None:
    url, _ = server
    status, output = run_once(CheckSpec("c", "http", http=url + "/health"))
    assert (status, output) == (PASSING, f"HTTP GET {url}/health: 200 OK Output: healthy")
    _, big = run_once(CheckSpec("c", "http", http=url + "/big"))
    assert len(big) < 4096 + 100 and big.endswith("x")


def test_http_timeout_and_refused_are_critical(server) -> None:
    url, handler = server
    handler.delay = 1.0
    t0 = time.monotonic()
    status, output = run_once(CheckSpec("c", "http", http=url, timeout_s=0.2))
    assert status == CRITICAL and time.monotonic() - t0 < 0.9
    status, output = run_once(CheckSpec("c", "http", http=f"http://127.0.0.1:{free_port()}/", timeout_s=1))
    assert status == CRITICAL and "refused" in output.lower()


def test_tcp_check(server) -> None:
    url, _ = server
    addr = url.removeprefix("http://")
    assert run_once(CheckSpec("c", "tcp", tcp=addr)) == (PASSING, f"TCP connect {addr}: Success")
    status, output = run_once(CheckSpec("c", "tcp", tcp=f"127.0.0.1:{free_port()}", timeout_s=1))
    assert status == CRITICAL and output.startswith("dial tcp 127.0.0.1:")


def test_invalid_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported type 'grpc'"):
        CheckSpec("c", "grpc", tcp="x:1")
    with pytest.raises(ValueError, match="http check needs a URL"):
        CheckSpec("c", "http")
    with pytest.raises(ValueError, match="interval and timeout must be positive"):
        CheckSpec("c", "tcp", tcp="127.0.0.1:1", interval_s=0)


def test_runner_reports_only_changes_and_stops(server) -> None:
    url, handler = server
    seen: list[tuple[str, str, str]] = []
    changed = threading.Event()

    def on_status(cid: str, status: str, output: str) -> None:
        seen.append((cid, status, output))
        changed.set()

    runner = CheckRunner(on_status)
    try:
        runner.add(CheckSpec("web", "http", http=url + "/health", interval_s=0.05, timeout_s=1))
        assert changed.wait(5)
        time.sleep(0.3)  # several more runs with the same result
        assert [s for _, s, _ in seen] == [PASSING]
        changed.clear()
        handler.status = 503
        assert changed.wait(5)
        time.sleep(0.2)  # more runs happen meanwhile: they must NOT report the unchanged status again
        assert [s for _, s, _ in seen] == [PASSING, CRITICAL]
        assert runner.status("web")[0] == CRITICAL
        runner.remove("web")
        assert runner.status("web") is None and runner.check_ids() == []
        n = len(seen)
        handler.status = 200
        time.sleep(0.3)  # time for runs that must NOT happen
        assert len(seen) == n  # a removed check reports nothing
        runner.add(CheckSpec("db", "tcp", tcp=url.removeprefix("http://"), interval_s=10))
        assert runner.check_ids() == ["db"]
    finally:
        runner.stop()
    assert runner.check_ids() == []


def test_initial_status_is_critical(server) -> None:
    url, handler = server
    handler.delay = 0.5
    runner = CheckRunner(lambda *a: None)
    try:
        runner.add(CheckSpec("slow", "http", http=url, interval_s=10, timeout_s=2))
        assert runner.status("slow") == (CRITICAL, "")
    finally:
        runner.stop()
