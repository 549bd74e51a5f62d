"""Consul's agent operations: leave, force-leave, the log monitor, and the ACL endpoints of an agent
without ACLs.

- PUT /v1/agent/leave: answers 200, then the agent shuts down cleanly (as on SIGTERM: tasks
  stopped), as Consul's graceful leave does.
- PUT /v1/agent/force-leave/<node>: only the agent's own node is a gossip member; it is alive, so
  force-leave has no effect on it (200); any other name is not a member (500).
- GET /v1/agent/monitor?loglevel=: streams the agent's log lines at that level and above until the
  client disconnects; an unknown level is refused before streaming, with Consul's 400.
- /v1/acl/* and /v1/agent/token/*: ACLs are disabled on the dev agent (as in `consul agent -dev`),
  so they answer Consul's 401 "ACL support disabled".
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator

from quart import Blueprint, Response, request

from nomadmesh.agent.http.common import HTTPError, current_ctx

bp = Blueprint("consul_agent_ops", __name__)

# Consul's log levels (hclog), and the Python level each streams from
LOG_LEVELS = {"TRACE": logging.DEBUG, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
              "ERR": logging.ERROR, "ERROR": logging.ERROR}
LEAVE_DELAY_S = 0.2  # long enough for the 200 to reach the client before the agent stops serving
MONITOR_QUEUE = 1000  # lines held for a slow reader; beyond it, lines are dropped (Consul drops them too)


@bp.put("/v1/agent/leave")
async def leave() -> Response:
    asyncio.get_running_loop().call_later(LEAVE_DELAY_S, os.kill, os.getpid(), signal.SIGTERM)
    return Response("", status=200)


@bp.put("/v1/agent/force-leave/<path:node>")
async def force_leave(node: str) -> Response:
    cfg = current_ctx().config
    if node in (cfg.node_name, f"{cfg.node_name}.{cfg.datacenter}"):
        return Response("", status=200)  # alive: force-leave changes nothing
    raise HTTPError(500, f"agent: No node found with name '{node}'")


class _QueueHandler(logging.Handler):
    def __init__(self, level: int, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str]):
        super().__init__(level)
        self.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
        self._loop, self._queue = loop, queue

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record) + "\n"
        self._loop.call_soon_threadsafe(self._put, line)

    def _put(self, line: str) -> None:
        if not self._queue.full():
            self._queue.put_nowait(line)


@bp.get("/v1/agent/monitor")
async def monitor() -> Response:
    raw = request.args.get("loglevel", "") or "INFO"
    level = LOG_LEVELS.get(raw.upper())
    if level is None:
        raise HTTPError(400, f"Unknown log level: {raw}")
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue(MONITOR_QUEUE)
    handler = _QueueHandler(level, loop, queue)
    root = logging.getLogger()

    async def lines() -> AsyncIterator[bytes]:
        root.addHandler(handler)
        try:
            while True:
                yield (await queue.get()).encode()
        finally:  # the client went away
            root.removeHandler(handler)

    resp = Response(lines(), mimetype="text/plain")
    resp.timeout = None  # a monitor streams until the client disconnects
    return resp


@bp.route("/v1/acl/<path:_rest>", methods=["GET", "PUT", "POST", "DELETE"])
@bp.route("/v1/agent/token/<path:_rest>", methods=["PUT"])
async def acl_disabled(_rest: str) -> Response:
    raise HTTPError(401, "ACL support disabled")
