"""Which requests FastLeaf answers itself (`plain_leaf_service`): only a plain GET of one leaf that the
DNS-rebinding guard lets through; everything else goes to Quart."""
from __future__ import annotations

from typing import Any

import pytest

from nomadmesh.agent.http.consul_connect import plain_leaf_service
from nomadmesh.webguard import own_address

OWN = own_address("127.0.0.1", 8500)


def scope(path: str = "/v1/agent/connect/ca/leaf/web", method: str = "GET", query: bytes = b"",
          headers: tuple[tuple[bytes, bytes], ...] = ((b"host", b"127.0.0.1:8500"),)) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "query_string": query, "headers": list(headers)}


def test_a_plain_get_is_answered_for_its_service() -> None:
    assert plain_leaf_service(scope(), OWN) == "web"
    assert plain_leaf_service(scope(path="/v1/agent/connect/ca/leaf/a b"), OWN) == "a b"
    assert plain_leaf_service(scope(headers=()), OWN) == "web"  # no Host: the guard lets it through


@pytest.mark.parametrize("request_scope", [
    scope(method="HEAD"),
    scope(method="PUT"),
    scope(query=b"index=3"),
    scope(query=b"wait=soon"),
    scope(path="/v1/agent/connect/ca/leaf/"),
    scope(path="/v1/agent/connect/ca/leaf/web/"),
    scope(path="/v1/agent/connect/ca/leaf//web"),
    scope(path="/v1/agent/connect/ca/roots"),
    scope(headers=((b"Host", b"evil.example"),)),
    scope(headers=((b"host", b"127.0.0.1:8500"), (b"content-length", b"2"))),
    scope(headers=((b"host", b"127.0.0.1:8500"), (b"Transfer-Encoding", b"chunked"))),
    {**scope(), "type": "websocket"},
], ids=["head", "put", "index", "bad-wait", "no-service", "trailing-slash", "double-slash", "other-route",
        "rebinding-host", "body", "chunked-body", "websocket"])
def test_anything_else_goes_to_quart(request_scope: dict[str, Any]) -> None:
    assert plain_leaf_service(request_scope, OWN) is None
