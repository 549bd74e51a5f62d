"""GET /v1/event/stream: Nomad's event stream, newline-delimited JSON.

Each line is one batch `{"Index": N, "Events": [...]}` of the events the stream's topics and
namespace select, or `{}`, a heartbeat sent when nothing happened for HEARTBEAT_S. `index=N`
starts at the batch of index N (the oldest one still buffered if N has left the buffer; 0, the
default, replays the whole buffer), as Nomad's event broker does. The stream holds a cursor into
the agent's one buffer (nomad/events.py) and no thread; a reader too slow to keep up with the
buffer is disconnected, and reconnects with `index=`.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator

from quart import Blueprint, Response, request

from nomadmesh.agent.http.nomad_ctx import scheduler
from nomadmesh.agent.http.nomad_util import HTTPError
from nomadmesh.agent.nomad.events import HEARTBEAT_S, SlowReader, Subscription, parse_topics

bp = Blueprint("nomad_events", __name__)
log = logging.getLogger("nomadmesh.agent.nomad.events")


@bp.route("/v1/event/stream", methods=["GET", "PUT", "POST", "DELETE"])
def event_stream() -> Response:
    if request.method != "GET":
        raise HTTPError(405, "Invalid method")
    raw_index = request.args.get("index") or "0"
    try:
        index = int(raw_index)
    except ValueError:
        quoted = json.dumps(raw_index)  # Go's %q
        raise HTTPError(400, f"Unable to parse index: strconv.Atoi: parsing {quoted}: invalid syntax") from None
    try:
        topics = parse_topics(request.args.getlist("topic"))
    except ValueError as e:
        raise HTTPError(400, f"Invalid topic query: {e}") from None
    wanted = Subscription(topics, request.args.get("namespace") or "default")
    broker = scheduler().events  # taken here: the body below runs after the view has returned
    cursor = broker.start_cursor(index)

    async def body() -> AsyncIterator[bytes]:
        nonlocal cursor
        last_sent = time.monotonic()
        while True:
            try:
                batches = broker.after(cursor)
            except SlowReader as e:
                log.info("event stream: dropping a slow reader (%s)", e)
                return
            for batch_index, events in batches:
                cursor = batch_index
                selected = [e for e in events if wanted.wants(e)]
                if selected:
                    last_sent = time.monotonic()
                    yield json.dumps({"Index": batch_index, "Events": selected}).encode() + b"\n"
            # A heartbeat after HEARTBEAT_S without a line, even while events this stream skips flow.
            quiet = time.monotonic() - last_sent
            if quiet >= HEARTBEAT_S:
                last_sent = time.monotonic()
                yield b"{}\n"
                continue
            await broker.wait(cursor, HEARTBEAT_S - quiet)

    resp = Response(body(), mimetype="application/json")
    resp.headers["Cache-Control"] = "no-cache"
    resp.timeout = None  # streams until the client leaves
    return resp
