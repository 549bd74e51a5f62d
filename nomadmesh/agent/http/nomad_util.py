"""Small helpers the Nomad API views share, on top of agent/http/common.py (errors, bodies, blocking).

Nomad answers errors as plain text with a status code (`CodedError(404, "job not found")`), accepts
booleans the way Go's strconv.ParseBool does (python-nomad sends "True"/"False"), and holds blocking
queries for `wait` (default and maximum 5 minutes, plus up to wait/16 of jitter).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from quart import Response, request

from nomadmesh.agent.http.common import (
    MAX_BODY_BYTES,
    NOMAD_WAIT,
    HTTPError,
    block,
    json_body as _json_body,
    parse_duration,
    set_index_headers,
)
from nomadmesh.agent.state import State

__all__ = ["MAX_BODY_BYTES", "HTTPError", "blocking", "check_fields", "go_bool", "go_fields", "go_int", "in_namespace",
           "json_body", "parse_bool", "parse_duration", "read_endpoint", "reply", "request_namespace",
           "strip_private", "text_error"]

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def _strconv_bool(raw: str) -> bool | None:
    """Go's strconv.ParseBool: None where it fails (each caller words the failure as its handler does)."""
    return True if raw in _TRUE else False if raw in _FALSE else None


def parse_bool(name: str, default: bool = False) -> bool:
    """Go's strconv.ParseBool, as Nomad parses query flags (python-nomad sends "True"/"False")."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if raw == "":
        return True  # `?purge` alone means true in Nomad's handlers
    value = _strconv_bool(raw)
    if value is None:
        raise HTTPError(400, f"Failed to parse value of {name!r} ({raw!r}) as a bool")
    return value


def go_bool(name: str, raw: str, status: int = 400) -> bool:
    """A client fs flag: "" is false; otherwise strconv.ParseBool, its failure worded as Nomad's fs handlers do."""
    value = False if raw == "" else _strconv_bool(raw)
    if value is None:
        raise HTTPError(status, f'failed to parse {name} field to boolean: strconv.ParseBool: parsing "{raw}": '
                                "invalid syntax")
    return value


def go_int(name: str, raw: str, status: int) -> int:
    """strconv.ParseInt(raw, 10, 64), its failure worded as Nomad's fs handlers word it."""
    if raw.strip() == raw and "_" not in raw:  # Python's int() accepts spaces and underscores, Go does not
        try:
            return int(raw, 10)
        except ValueError:
            pass
    raise HTTPError(status, f'error parsing {name}: strconv.ParseInt: parsing "{raw}": invalid syntax')


def json_body() -> dict[str, Any]:
    """The request's JSON object (400 when malformed or not an object, 413 when huge)."""
    body = _json_body(required=True)
    if not isinstance(body, dict):
        raise HTTPError(400, "Request decode failed: expected a JSON object")
    return body


def check_fields(body: dict[str, Any], allowed: Iterable[str], what: str) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise HTTPError(400, f"{what}: unknown field {unknown[0]!r}")


def go_fields(body: dict[str, Any], allowed: Iterable[str], what: str) -> dict[str, Any]:
    """`body` with its keys spelled as `allowed` spells them: Go's encoding/json matches field names
    case-insensitively (python-nomad sends "UnHealthyAllocationIDs"); an unknown field is refused."""
    spelled = {name.lower(): name for name in allowed}
    out = {spelled.get(k.lower(), k): v for k, v in body.items()}
    check_fields(out, allowed, what)
    return out


async def blocking(state: State, kinds: tuple[str, ...]) -> int:
    """Run the blocking part of a query (`index`/`wait`, Nomad's 5 min cap plus jitter)."""
    return await block(state, kinds, NOMAD_WAIT)


def reply(value: Any, index: int | None = None, status: int = 200) -> Response:
    resp = Response(json.dumps(value), status=status, mimetype="application/json")
    if index is not None:
        set_index_headers(resp, index, "X-Nomad-Index")
    return resp


async def read_endpoint(state: State, kinds: tuple[str, ...], produce: Callable[[], Any]) -> Response:
    """A blocking GET: wait on `kinds`, then build the answer from current state."""
    index = await blocking(state, kinds)
    return reply(produce(), index)


def request_namespace() -> str:
    """The namespace a request reads or writes: `?namespace=`, else `default` (Nomad's parseNamespace)."""
    return request.args.get("namespace") or "default"


def in_namespace(docs: Iterable[dict[str, Any]], wildcard: bool = True) -> list[dict[str, Any]]:
    """The jobs, allocations, evaluations or deployments of the request's namespace; `*` is every
    namespace on the list endpoints that take it."""
    ns = request_namespace()
    if ns == "*" and wildcard:
        return list(docs)
    return [d for d in docs if d.get("Namespace", "default") == ns]


def text_error(status: int, message: str) -> Response:
    """Nomad writes the error text alone, no newline added (clients compare it exactly)."""
    return Response(message, status=status, mimetype="text/plain")


def strip_private(doc: dict[str, Any]) -> dict[str, Any]:
    """Documents may carry agent-private keys (leading underscore) that never reach clients."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}
