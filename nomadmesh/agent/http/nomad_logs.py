"""/v1/client/fs/logs/<alloc>: a task's stdout/stderr, plain or in Nomad's JSON frames, optionally followed.

Framed output is a stream of JSON objects {Offset, Data (base64), File, FileEvent}; while
following, an empty object `{}` is sent as a heartbeat when nothing new was written for a second,
as Nomad's StreamFramer does. Reading files is the runtime's job (runtime.logs, which also refuses
task names and types that could escape the allocation's log directory).
"""
from __future__ import annotations

import base64
import json
from typing import Iterator

from flask import Blueprint, Response, request, stream_with_context

from nomadmesh.agent.http.nomad_ctx import ctx, scheduler
from nomadmesh.agent.http.nomad_util import HTTPError, parse_bool, parse_int

bp = Blueprint("nomad_logs", __name__)

HEARTBEAT_S = 1.0


def _frame(data: bytes, offset: int, file: str) -> bytes:
    return json.dumps({"Offset": offset, "Data": base64.b64encode(data).decode(), "File": file,
                       "FileEvent": ""}).encode()


@bp.get("/v1/client/fs/logs/<alloc_id>")
def logs(alloc_id: str) -> Response:
    task = request.args.get("task", "")
    kind = request.args.get("type", "")
    if not task:
        raise HTTPError(400, "must include task name")
    if kind not in ("stdout", "stderr"):
        raise HTTPError(400, "must include file type: stdout or stderr")
    origin = request.args.get("origin", "start")
    offset = parse_int("offset", 0)
    follow = parse_bool("follow")
    plain = parse_bool("plain")
    rec = ctx().state.get("alloc", alloc_id)
    if rec is None:
        raise HTTPError(404, f"Unknown allocation \"{alloc_id}\"")
    alloc = rec.value
    tasks = {t["Name"] for g in alloc["Job"]["TaskGroups"] if g["Name"] == alloc["TaskGroup"]
             for t in g.get("Tasks") or []}
    if task not in tasks:
        raise HTTPError(400, f"unknown task name \"{task}\"")
    platform = scheduler().platform

    def done() -> bool:
        cur = ctx().state.get("alloc", alloc_id)
        return cur is None or cur.value["ClientStatus"] not in ("pending", "running")

    try:
        chunks = platform.log_chunks(alloc_id, task, kind, offset, origin, follow, done, HEARTBEAT_S)
    except ValueError as e:
        raise HTTPError(400, str(e)) from None

    def body() -> Iterator[bytes]:
        for chunk in chunks:
            if plain:
                if chunk.data:
                    yield chunk.data
            elif chunk.data:
                yield _frame(chunk.data, chunk.offset, chunk.file)
            else:
                yield b"{}"  # heartbeat, as Nomad's StreamFramer sends

    return Response(stream_with_context(body()), mimetype="text/plain" if plain else "application/json")
