"""Small helpers the Nomad API views share: errors, query parsing, blocking queries, JSON replies.

Nomad answers errors as plain text with a status code (`CodedError(404, "job not found")`), accepts
booleans the way Go's strconv.ParseBool does (python-nomad sends "True"/"False"), and holds blocking
queries for `wait` (default and maximum 5 minutes, plus up to wait/16 of jitter).
"""
from __future__ import annotations

import json
import random
import re
from typing import Any, Callable, Iterable

from flask import Response, request

from nomadmesh.agent.state import State

MAX_WAIT_S = 300.0
MAX_BODY_BYTES = 8 * 1024 * 1024  # a job is a few KB; refuse anything absurd before parsing it

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class HTTPError(Exception):
    """Ends a request with Nomad's status code and a one-line plain-text reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_bool(name: str, default: bool = False) -> bool:
    raw = request.args.get(name)
    if raw is None:
        return default
    if raw == "":
        return True  # `?purge` alone means true in Nomad's handlers
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise HTTPError(400, f"Failed to parse value of {name!r} ({raw!r}) as a bool")


def parse_int(name: str, default: int = 0) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise HTTPError(400, f"Failed to parse value of {name!r} ({raw!r}) as an integer") from None


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration subset Nomad clients send ("5s", "1m30s", "300ms"); bare numbers are seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return float(text)
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}")
    return total


def json_body() -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise HTTPError(413, f"Request body too large (limit {MAX_BODY_BYTES} bytes)")
    raw = request.get_data(cache=False)
    if len(raw) > MAX_BODY_BYTES:
        raise HTTPError(413, f"Request body too large (limit {MAX_BODY_BYTES} bytes)")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as e:
        raise HTTPError(400, f"Request decode failed: {e}") from None
    if not isinstance(body, dict):
        raise HTTPError(400, "Request decode failed: expected a JSON object")
    return body


def check_fields(body: dict[str, Any], allowed: Iterable[str], what: str) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise HTTPError(400, f"{what}: unknown field {unknown[0]!r}")


def blocking(state: State, kinds: tuple[str, ...]) -> int:
    """Run the blocking part of a query (if `index` was given) and return the index to report."""
    index = parse_int("index", 0)
    wait_raw = request.args.get("wait")
    try:
        wait = parse_duration(wait_raw) if wait_raw else MAX_WAIT_S
    except ValueError as e:
        raise HTTPError(400, str(e)) from None
    wait = min(max(wait, 0.0), MAX_WAIT_S)
    if index > 0:
        # Jitter spreads out the wake-ups of many watchers, as Nomad does.
        return state.wait(kinds, index, wait + random.uniform(0, wait / 16))
    return state.kind_index(*kinds)


def reply(value: Any, index: int | None = None, status: int = 200) -> Response:
    resp = Response(json.dumps(value), status=status, mimetype="application/json")
    if index is not None:
        resp.headers["X-Nomad-Index"] = str(index)
        resp.headers["X-Nomad-KnownLeader"] = "true"
        resp.headers["X-Nomad-LastContact"] = "0"
    return resp


def read_endpoint(state: State, kinds: tuple[str, ...], produce: Callable[[], Any]) -> Response:
    """A blocking GET: wait on `kinds`, then build the answer from current state."""
    index = blocking(state, kinds)
    return reply(produce(), index)


def text_error(status: int, message: str) -> Response:
    return Response(message + "\n" if not message.endswith("\n") else message, status=status,
                    mimetype="text/plain")


def strip_private(doc: dict[str, Any]) -> dict[str, Any]:
    """Documents may carry agent-private keys (leading underscore) that never reach clients."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}
