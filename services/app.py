"""The seed tutorial's three Flask services (order -> invoice -> tax) in one file.

Each service answers `GET /` with its own line, `{"Service": "<Name>", "Version": 1.0}`, followed
by its upstream's answer (order calls invoice, invoice calls tax). VERSION sets the version it answers
(default 1.0) and FAIL_RATE the share of `GET /` requests it answers 500 (default 0): what a release
of a new, possibly broken, version looks like. Failures are spread evenly and deterministically (with
0.25, every 4th request fails), so tests and benches can count on the share; `/health` never fails.
The upstream address comes from what Nomad injects for a Connect upstream
(NOMAD_UPSTREAM_ADDR_<name>), or from the seed's INV_SVC_URL / TAX_SVC_URL when those are set.
`GET /health` is for the health checks.

Run as `python app.py <order|invoice|tax>`. It listens on BIND_ADDR (default 127.0.0.1, so inside a
network namespace only the sidecar reaches it) and on PORT (default: the service's seed port).
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
import threading
import urllib.error
import urllib.request

from flask import Flask, Response

# name -> (seed port, upstream name, seed's URL variable for that upstream)
SERVICES: dict[str, tuple[int, str | None, str | None]] = {
    "order": (5000, "invoice", "INV_SVC_URL"),
    "invoice": (5001, "tax", "TAX_SVC_URL"),
    "tax": (5002, None, None),
}
UPSTREAM_TIMEOUT_S = 5.0
_NUMBER = re.compile(r"\d+(\.\d+)?")


def version_value(text: str) -> float | str:
    """VERSION as the answer carries it: a number when it is one (1.0, as the seed answers), else the text."""
    return float(text) if _NUMBER.fullmatch(text) else text


def fail_rate(text: str) -> float:
    """FAIL_RATE as a share in [0, 1]; ValueError with what is wrong otherwise."""
    try:
        rate = float(text)
    except ValueError:
        raise ValueError(f"FAIL_RATE: {text!r} is not a number between 0 and 1") from None
    if not 0 <= rate <= 1 or math.isnan(rate):
        raise ValueError(f"FAIL_RATE: {text!r} is not a number between 0 and 1")
    return rate


class FailureSchedule:
    """Which requests fail: the n-th request (from 1) fails when floor(n * rate) grows, so exactly
    `rate` of any run of requests fails, evenly spread (0.5: every 2nd; 0.1: every 10th). Thread-safe."""

    def __init__(self, rate: float) -> None:
        self.rate, self.count, self.lock = rate, 0, threading.Lock()

    def next_fails(self) -> bool:
        with self.lock:
            self.count += 1
            return math.floor(self.count * self.rate) > math.floor((self.count - 1) * self.rate)


def upstream_url(upstream: str, url_var: str | None, env: dict[str, str]) -> str | None:
    """The base URL of the upstream: the seed's variable first, then Nomad's upstream address."""
    if url_var and env.get(url_var):
        return env[url_var].rstrip("/")
    addr = env.get(f"NOMAD_UPSTREAM_ADDR_{upstream}") or env.get(
        f"NOMAD_UPSTREAM_ADDR_{upstream.replace('-', '_')}"
    )
    return f"http://{addr}" if addr else None


def create_app(name: str, env: dict[str, str] | None = None) -> Flask:
    env = dict(os.environ) if env is None else env
    _, upstream, url_var = SERVICES[name]
    base = upstream_url(upstream, url_var, env) if upstream else None
    app = Flask(name)
    version = version_value(env.get("VERSION") or "1.0")
    failures = FailureSchedule(fail_rate(env.get("FAIL_RATE") or "0"))
    own = {"Service": name.capitalize(), "Version": version}
    own_line = json.dumps(own) + "\n"

    def error(message: str) -> Response:
        body = json.dumps({"error": message, "upstream": upstream}) + "\n"
        return Response(body, status=502, mimetype="application/json")

    @app.get("/")
    def index() -> Response:
        if failures.next_fails():
            body = json.dumps({**own, "error": f"failure injected (FAIL_RATE={failures.rate})"}) + "\n"
            return Response(body, status=500, mimetype="application/json")
        if upstream is None:
            return Response(own_line, mimetype="application/json")
        if base is None:
            return error(f"no address for upstream {upstream}")
        try:
            with urllib.request.urlopen(base + "/", timeout=UPSTREAM_TIMEOUT_S) as r:
                tail = r.read().decode()
        except urllib.error.HTTPError as e:
            # Carry the upstream's own one-line error along, so order's 502 names the failing hop.
            detail = e.read(500).decode(errors="replace").strip().replace("\n", " ")
            return error(f"upstream {upstream} answered {e.code}" + (f": {detail}" if detail else ""))
        except (OSError, ValueError) as e:
            # Connection reset/refused: what a sidecar does when an intention denies the call.
            return error(f"upstream {upstream} failed: {type(e).__name__}: {e}")
        return Response(own_line + tail, mimetype="application/json")

    @app.get("/health")
    def health() -> Response:
        return Response(json.dumps({"status": "ok", "service": name}) + "\n", mimetype="application/json")

    return app


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[1] not in SERVICES:
        sys.exit(f"usage: {argv[0]} {{{'|'.join(SERVICES)}}}")
    name = argv[1]
    port = int(os.environ.get("PORT", SERVICES[name][0]))
    host = os.environ.get("BIND_ADDR", "127.0.0.1")
    from waitress import serve  # a threaded production server, not Flask's dev server

    try:
        app = create_app(name)
    except ValueError as e:
        sys.exit(str(e))
    serve(app, host=host, port=port, threads=8, _quiet=True)


if __name__ == "__main__":
    main(sys.argv)
