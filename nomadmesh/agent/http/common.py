"""Quart helpers the agent's HTTP APIs share: errors, body limits, Go durations, blocking queries.

Blocking queries work the same on both APIs: `?index=N&wait=D` holds the request until the state
behind the endpoint moves past N or D passes (plus up to D/16 of random jitter, so many watchers do
not all wake at once), then answers with the current index in `X-Consul-Index` / `X-Nomad-Index`.
Consul's default wait is 5 minutes, its maximum 10; Nomad's default and maximum are 5 minutes.
The wait is an await on the HTTP loop (State.wait_async): it holds no thread, and a client that
disconnects cancels it.

Views may be sync, Flask-style (Quart runs them in the loop's executor): the request body is read
before the view by `load_body` (an app-level before_request hook), so `read_body`/`json_body`
stay plain functions.
"""
from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from quart import Response, g, request
from werkzeug.routing import PathConverter

from nomadmesh.agent.context import AgentContext
from nomadmesh.agent.duration_seconds import parse_duration
from nomadmesh.agent.http.parts import consul_parts
from nomadmesh.agent.state import State


class AnyCharPathConverter(PathConverter):
    """`<path:...>` that also matches CR and LF (werkzeug's `.` stops at a newline).

    Consul accepts any characters in service names and IDs and Nomad in job IDs (but spaces and
    NUL); a client sends them URL-encoded (%0D%0A, %2F), and what was stored must stay readable
    and removable. Installed as the apps' `path` converter."""

    regex = "[^/](?s:.)*?"

MAX_BODY_BYTES = 8 * 1024 * 1024  # nothing the agent takes is near this; refuse absurd bodies early
# Nothing the agent takes nests beyond ~15 levels (a job's upstreams); a 100k-deep body would
# exhaust Python's recursion in the decoder or in any recursive check after it.
MAX_JSON_DEPTH = 128


@dataclass(frozen=True)
class WaitLimits:
    default_s: float
    max_s: float


CONSUL_WAIT = WaitLimits(default_s=300.0, max_s=600.0)
NOMAD_WAIT = WaitLimits(default_s=300.0, max_s=300.0)



class HTTPError(Exception):
    """Ends a request with a status code and a one-line plain-text reason (Consul and Nomad
    both answer errors as text/plain)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def text_response(status: int, message: str) -> Response:
    return Response(message.rstrip("\n") + "\n", status=status, mimetype="text/plain")


def json_response(value: Any, status: int = 200, index: int | None = None, header: str = "X-Consul-Index") -> Response:
    resp = Response(json.dumps(value), status=status, mimetype="application/json")
    if index is not None:
        set_index_headers(resp, index, header)
    return resp


def set_index_headers(resp: Response, index: int, header: str = "X-Consul-Index") -> Response:
    resp.headers[header] = str(index)
    prefix = header.rsplit("-", 1)[0]  # "X-Consul" or "X-Nomad"
    resp.headers[f"{prefix}-KnownLeader"] = "true"
    resp.headers[f"{prefix}-LastContact"] = "0"
    return resp


def query_flag(name: str) -> bool:
    """Consul's presence flags (`?recurse`, `?raw`, `?passing`): present means true, unless it
    says false explicitly."""
    if name not in request.args:
        return False
    return request.args.get(name, "").lower() not in ("false", "0", "f")


def query_int(name: str, default: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPError(400, f"Invalid {name} value: {raw!r} is not an integer") from None
    if value < 0:
        raise HTTPError(400, f"Invalid {name} value: {value} is negative")
    return value


@dataclass(frozen=True)
class BlockingArgs:
    index: int  # 0: answer at once
    wait_s: float


def blocking_args(limits: WaitLimits = CONSUL_WAIT) -> BlockingArgs:
    """`?index=&wait=` of the current request, with `wait` clamped and jittered as Consul/Nomad do."""
    index = query_int("index", 0) or 0
    raw = request.args.get("wait")
    if raw:
        try:
            wait = parse_duration(raw)
        except ValueError:
            raise HTTPError(400, f"Invalid wait time: {raw!r}") from None
    else:
        wait = limits.default_s
    wait = min(wait, limits.max_s) if wait > 0 else limits.default_s
    return BlockingArgs(index=index, wait_s=wait + random.random() * wait / 16)


async def block(state: State, kinds: Iterable[str], limits: WaitLimits = CONSUL_WAIT) -> int:
    """Wait as the request's `index`/`wait` ask; returns the kinds' current index."""
    args = blocking_args(limits)
    if args.index <= 0:
        return state.kind_index(*kinds)
    return await state.wait_async(kinds, args.index, args.wait_s)


async def load_body() -> None:
    """before_request: read the whole body (at most the app's MAX_CONTENT_LENGTH, else 413)
    so that views, sync or async, take it from `read_body`."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return  # read_body answers with the size; nothing is read
    g.nomadmesh_body = await request.get_data(cache=True)


def read_body(limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw request body, refused with 413 beyond `limit`."""
    if request.content_length is not None and request.content_length > limit:
        raise HTTPError(413, f"Request body({request.content_length} bytes) too large, max size: {limit} bytes")
    raw: bytes = g.get("nomadmesh_body", b"")
    if len(raw) > limit:
        raise HTTPError(413, f"Request body too large, max size: {limit} bytes")
    return raw


def json_body(required: bool = True, limit: int = MAX_BODY_BYTES) -> Any:
    """The decoded JSON body; 400 `Request decode failed: ...` (Consul's wording) when malformed."""
    raw = read_body(limit)
    if not raw.strip():
        if required:
            raise HTTPError(400, "Request decode failed: empty body")
        return None
    too_deep = f"Request decode failed: exceeded max depth ({MAX_JSON_DEPTH} levels of nesting)"
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise HTTPError(400, f"Request decode failed: {e}") from None
    except RecursionError:
        raise HTTPError(400, too_deep) from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise HTTPError(400, too_deep)
    return value


def json_depth(value: Any) -> int:
    """How deeply `value` nests lists and objects (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def current_ctx() -> AgentContext:
    """The AgentContext the Consul app was created with (its ConsulParts)."""
    return consul_parts().ctx
