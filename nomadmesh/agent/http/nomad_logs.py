"""/v1/client/fs/logs/<alloc>: a task's stdout/stderr, plain or in Nomad's JSON frames, optionally followed.

Framed output is a stream of JSON objects {Offset, Data (base64), File, FileEvent}; while
following, an empty object `{}` is sent as a heartbeat when nothing new was written for a second,
as Nomad's StreamFramer does. Reading files is the runtime's job (runtime.logs, which also refuses
task names and types that could escape the allocation's log directory).

Following is an await on the HTTP loop, not a thread: the runtime's follower is asked for one quick
pass at a time (a chunk, or an empty one when nothing is new) and the stream sleeps between passes;
a client that disconnects cancels the stream.
"""
from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from quart import Blueprint, Response, request

from nomadmesh.agent.http.nomad_ctx import ctx, scheduler
from nomadmesh.agent.http.nomad_util import HTTPError, go_bool, go_int

bp = Blueprint("nomad_logs", __name__)

HEARTBEAT_S = 1.0
POLL_S = 0.2  # how often a followed log is looked at while nothing is new


def _frame(data: bytes, offset: int, file: str) -> bytes:
    return json.dumps({"Offset": offset, "Data": base64.b64encode(data).decode(), "File": file,
                       "FileEvent": ""}).encode()


@bp.get("/v1/client/fs/logs/<alloc_id>")
def logs(alloc_id: str) -> Response:
    # Checked in the order Nomad's handler checks them, with its texts.
    task = request.args.get("task", "")
    if not task:
        raise HTTPError(400, "must provide task name")
    follow = go_bool("follow", request.args.get("follow", ""))
    plain = go_bool("plain", request.args.get("plain", ""))
    kind = request.args.get("type", "")
    if kind not in ("stdout", "stderr"):
        raise HTTPError(400, "must provide log type (stdout/stderr)")
    offset_raw = request.args.get("offset", "")
    offset = go_int("offset", offset_raw, 400) if offset_raw else 0
    origin = request.args.get("origin", "") or "start"
    if origin not in ("start", "end"):
        raise HTTPError(400, "origin must be start or end")
    rec = ctx().state.get("alloc", alloc_id)
    if rec is None:
        raise HTTPError(404, f"Unknown allocation \"{alloc_id}\"")
    alloc = rec.value
    tasks = {t["Name"] for g in alloc["Job"]["TaskGroups"] if g["Name"] == alloc["TaskGroup"]
             for t in g.get("Tasks") or []}
    if task not in tasks:
        raise HTTPError(400, f"unknown task name \"{task}\"")
    platform = scheduler().platform

    state = ctx().state  # taken here: the stream below runs after the view has returned

    def done() -> bool:
        cur = state.get("alloc", alloc_id)
        return cur is None or cur.value["ClientStatus"] not in ("pending", "running")

    try:
        # heartbeat 0 and a stop event never set: each step of the follower is one quick pass that
        # returns a chunk or an empty one, never a sleep; the waiting happens in `paced` below.
        chunks = platform.log_chunks(alloc_id, task, kind, offset, origin, follow, done, 0.0, stop=threading.Event(),
                                     poll_s=0.0) if follow else platform.log_chunks(alloc_id, task, kind, offset,
                                                                                    origin, False, done)
    except ValueError as e:
        raise HTTPError(400, str(e)) from None

    async def body() -> AsyncIterator[bytes]:
        async for data, f_offset, f_name in paced(chunks):
            if plain:
                if data:
                    yield data
            elif data:
                yield _frame(data, f_offset, f_name)
            else:
                yield b"{}"  # heartbeat, as Nomad's StreamFramer sends

    resp = Response(body(), mimetype="text/plain" if plain else "application/json")
    resp.timeout = None  # a followed log streams until the task ends or the client leaves
    return resp


async def paced(chunks: Iterator[Any]) -> AsyncIterator[tuple[bytes, int, str]]:
    """(data, offset, file) of each runtime.logs chunk; an empty pass becomes a sleep of POLL_S,
    and once every HEARTBEAT_S without data an empty data (a heartbeat)."""
    last = time.monotonic()
    for chunk in chunks:
        if chunk.data:
            last = time.monotonic()
            yield chunk.data, chunk.offset, chunk.file
            continue
        if time.monotonic() - last >= HEARTBEAT_S:
            last = time.monotonic()
            yield b"", 0, ""
        await asyncio.sleep(POLL_S)
