"""Consul's user events: PUT /v1/event/fire/<name> and GET /v1/event/list.

Consul gossips an event to every agent; each agent keeps it (in a ring of its last 256) only when
the event's filters select it: `node` a regex on its node name, `service` a regex on one of its
service IDs, `tag` a regex on that service's tags. The dev agent is the only agent, so it keeps the
event when the filters select itself, and `/v1/event/list` lists what it kept, filtered by `name`
only, as Consul does. Events live in memory: like Consul's, they are gone after a restart.

The list's X-Consul-Index is Consul's: the last event's ID folded to 64 bits (1 when there is
none); a blocking list (`?index=`) waits while that index is the one given.
"""
from __future__ import annotations

import asyncio
import base64
import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from quart import Blueprint, Response, current_app, request

from nomadmesh.agent.http.common import HTTPError, blocking_args, json_response, read_body
from nomadmesh.agent.http.parts import consul_parts

bp = Blueprint("consul_events", __name__)

RING_SIZE = 256  # Consul's userEventSize
EVENT_VERSION = 1  # Consul's userEventMaxVersion
_EXTENSION = "nomadmesh.user-events"


@dataclass
class UserEvents:
    """The events this agent kept, oldest first, and a way to wait for the next one."""
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RING_SIZE))
    ltime: int = 0
    fired: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, event: dict[str, Any]) -> None:
        self.ltime += 1
        self.events.append(dict(event, LTime=self.ltime))
        self.fired.set()
        self.fired = asyncio.Event()


def _events() -> UserEvents:
    store = current_app.extensions.get(_EXTENSION)
    if store is None:
        store = current_app.extensions[_EXTENSION] = UserEvents()
    return store


def index_of(event_id: str) -> int:
    """Consul's uuidToUint64: the ID's first and last 64 bits XORed."""
    digits = event_id.replace("-", "")
    return int(digits[:16], 16) ^ int(digits[16:], 16)


def _compile(kind: str, pattern: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as e:
        raise HTTPError(500, f"Invalid {kind} filter: {e}") from None


def selects_this_agent(event: dict[str, Any], node_name: str, services: list[dict[str, Any]]) -> bool:
    """Whether Consul's agent would keep `event` (its shouldProcessUserEvent), given its services."""
    node_re = _compile("node", event["NodeFilter"])
    if node_re and not node_re.search(node_name):
        return False
    service_re = _compile("service", event["ServiceFilter"])
    if service_re is None:
        return True
    tag_re = _compile("tag", event["TagFilter"])
    for svc in services:
        if service_re.search(svc["ID"]) and (
                tag_re is None or any(tag_re.search(tag) for tag in svc.get("Tags") or ())):
            return True
    return False


@bp.put("/v1/event/fire/<path:name>")
async def fire(name: str) -> Response:
    payload = read_body()
    event = {"ID": str(uuid.uuid4()), "Name": name,
             "Payload": base64.b64encode(payload).decode() if payload else None,
             "NodeFilter": request.args.get("node", ""), "ServiceFilter": request.args.get("service", ""),
             "TagFilter": request.args.get("tag", ""), "Version": EVENT_VERSION, "LTime": 0}
    if event["TagFilter"] and not event["ServiceFilter"]:
        raise HTTPError(500, "Cannot provide tag filter without service filter")
    parts = consul_parts()
    if selects_this_agent(event, parts.catalog.node_name, parts.catalog.services()):
        _events().add(event)
    return json_response(event)


@bp.put("/v1/event/fire/")
@bp.put("/v1/event/fire")
async def fire_unnamed() -> Response:
    raise HTTPError(400, "Missing name")


@bp.get("/v1/event/list")
async def list_events() -> Response:
    store = _events()
    args = blocking_args()
    name = request.args.get("name", "")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.wait_s
    while True:
        fired = store.fired
        found = [e for e in store.events if not name or e["Name"] == name]
        index = index_of(found[-1]["ID"]) if found else 1
        remaining = deadline - loop.time()
        if args.index == 0 or index != args.index or remaining <= 0:
            return json_response(found, index=index)
        try:
            await asyncio.wait_for(fired.wait(), remaining)
        except TimeoutError:
            return json_response(found, index=index)
