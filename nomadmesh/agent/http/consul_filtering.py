"""Query parameters Consul's server-side endpoints share: `?filter=` (the rows a filter expression
selects, or Consul's 400; compiled before a blocking query waits, so a bad filter is refused at
once), `?node-meta=key:value`, and `?dc=` (the one datacenter; any other is Consul's "No path to
datacenter")."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from quart import request

from nomadmesh.agent.consul import filter as bexpr
from nomadmesh.agent.http.common import HTTPError, current_ctx

T = TypeVar("T")


def request_filter(schema: bexpr.Schema,
                   view: Callable[[Any], dict[str, Any]] = lambda r: r) -> Callable[[list[T]], list[T]]:
    """The request's `?filter=` for rows of `schema` (`view` gives a row's fields): a function
    keeping the rows it selects; 400 with Consul's text when the expression is invalid."""
    expression = request.args.get("filter")
    if not expression:
        return lambda rows: rows
    try:
        predicate = bexpr.compile_filter(expression, schema)
    except bexpr.FilterError as e:
        raise HTTPError(400, str(e)) from None
    return lambda rows: [r for r in rows if predicate(view(r))]


async def refuse_other_datacenters() -> None:
    """before_request: `?dc=` naming another datacenter is Consul's 500 "No path to datacenter"
    (the dev agent has one); the /v1/agent endpoints, local to the agent, take no `dc`."""
    dc = request.args.get("dc")
    if dc and dc != current_ctx().config.datacenter and not request.path.startswith("/v1/agent/"):
        raise HTTPError(500, "No path to datacenter")


def node_meta_filter(meta_of: Callable[[Any], dict[str, str]]) -> Callable[[list[T]], list[T]]:
    """`?node-meta=key:value` (repeatable; all must match) on the catalog and health reads."""
    wanted = []
    for raw in request.args.getlist("node-meta"):
        key, sep, value = raw.partition(":")
        wanted.append((key, value if sep else ""))
    if not wanted:
        return lambda rows: rows
    return lambda rows: [r for r in rows if all((meta_of(r) or {}).get(k) == v for k, v in wanted)]
