"""/v1/client/fs/{ls,stat,cat,readat,stream}/<alloc>: an allocation's files, as Nomad's client serves them.

Paths are relative to the allocation dir ("/" is the dir itself) and hostile: the runtime
(runtime.allocfs, through the Platform) refuses any that would leave the allocation dir and any read
of a task's secrets. Status codes follow Nomad's handlers: ls and stat answer a missing path with
404 and an escape with 500; cat, readat and stream stat the file first and answer 400 for a missing
path, a directory or an escape, and 500 for a prohibited read.

stream sends Nomad's JSON frames {Offset, Data (base64), File, FileEvent} (empty fields omitted, `{}`
as the heartbeat after a second of silence) and by default follows the file until the client
leaves or the file is deleted ("file deleted"); a truncation restarts at 0 ("file truncated").
"""
from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

from quart import Blueprint, Response, request

from nomadmesh.agent.http.nomad_ctx import ctx, scheduler
from nomadmesh.agent.http.nomad_util import HTTPError, go_bool, go_int, reply
from nomadmesh.agent.nomad.platform import AllocFsError, OpenFile

bp = Blueprint("nomad_fs", __name__)

FRAME_SIZE = 64 * 1024  # Nomad's streamFrameSize
HEARTBEAT_S = 1.0  # Nomad's streamHeartbeatRate
POLL_S = 0.2  # Nomad's streamBatchWindow: how often a followed file is looked at

_NO_ALLOC = "must provide a valid alloc id"
_NO_PATH = "must provide a file name"
FILE_DELETED = "file deleted"
FILE_TRUNCATED = "file truncated"


def frame(data: bytes = b"", offset: int = 0, file: str = "", event: str = "") -> bytes:
    """One StreamFrame as Nomad's JSON encoder writes it (empty fields omitted; all empty = heartbeat)."""
    doc: dict[str, object] = {}
    if offset:
        doc["Offset"] = offset
    if data:
        doc["Data"] = base64.b64encode(data).decode()
    if file:
        doc["File"] = file
    if event:
        doc["FileEvent"] = event
    return json.dumps(doc).encode()


def _alloc_root(alloc_id: str) -> Path:
    if not alloc_id:
        raise HTTPError(400, _NO_ALLOC)
    if ctx().state.get("alloc", alloc_id) is None:
        raise HTTPError(404, f'Unknown allocation "{alloc_id}"')
    try:
        root = scheduler().platform.alloc_fs_root(alloc_id)
    except ValueError:
        root = None
    if root is None:
        raise HTTPError(404, f"state for allocation {alloc_id} not found on client")
    return root


def _path(default: str | None = None) -> str:
    path = request.args.get("path", "")
    if path:
        return path
    if default is None:
        raise HTTPError(400, _NO_PATH)
    return default


def _lookup_error(e: AllocFsError) -> HTTPError:
    """ls/stat: Nomad turns "no such file or directory" into a 404, anything else stays a 500."""
    return HTTPError(404 if e.kind == "missing" else 500, e.message)


def _stream_error(e: AllocFsError) -> HTTPError:
    """cat/readat/stream: the stat before streaming answers 400; a refused read is a 500."""
    return HTTPError(500 if e.kind == "prohibited" else 400, e.message)


@bp.get("/v1/client/fs/ls/", defaults={"alloc_id": ""})
@bp.get("/v1/client/fs/ls/<alloc_id>")
def ls(alloc_id: str) -> Response:
    root = _alloc_root(alloc_id)
    try:
        return reply(scheduler().platform.fs_list(root, _path("/")))
    except AllocFsError as e:
        raise _lookup_error(e) from None


@bp.get("/v1/client/fs/stat/", defaults={"alloc_id": ""})
@bp.get("/v1/client/fs/stat/<alloc_id>")
def stat(alloc_id: str) -> Response:
    root = _alloc_root(alloc_id)
    path = _path()
    try:
        return reply(scheduler().platform.fs_stat(root, path))
    except AllocFsError as e:
        raise _lookup_error(e) from None


def _open(alloc_id: str) -> OpenFile:
    root = _alloc_root(alloc_id)
    path = _path()
    try:
        return scheduler().platform.fs_open(root, path)
    except AllocFsError as e:
        raise _stream_error(e) from None


def _plain(f: OpenFile, offset: int, limit: int) -> Response:
    """The file's bytes from `offset` (at most `limit` when > 0), untrusted: served as octet-stream."""

    async def body() -> AsyncIterator[bytes]:
        try:
            pos, left = max(offset, 0), limit if limit > 0 else None
            while left is None or left > 0:
                data = f.read(pos, FRAME_SIZE if left is None else min(FRAME_SIZE, left))
                if not data:
                    return
                pos += len(data)
                left = None if left is None else left - len(data)
                yield data
        finally:
            f.close()

    # File contents are the task's, not ours: never let a browser sniff them into HTML.
    resp = Response(body(), mimetype="application/octet-stream")
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return resp


@bp.get("/v1/client/fs/cat/", defaults={"alloc_id": ""})
@bp.get("/v1/client/fs/cat/<alloc_id>")
def cat(alloc_id: str) -> Response:
    return _plain(_open(alloc_id), 0, 0)


@bp.get("/v1/client/fs/readat/", defaults={"alloc_id": ""})
@bp.get("/v1/client/fs/readat/<alloc_id>")
def readat(alloc_id: str) -> Response:
    if not alloc_id:
        raise HTTPError(400, _NO_ALLOC)
    _path()
    offset = go_int("offset", request.args.get("offset", ""), 500)
    limit_raw = request.args.get("limit", "")
    limit = go_int("limit", limit_raw, 500) if limit_raw else 0
    return _plain(_open(alloc_id), offset, limit)


@bp.get("/v1/client/fs/stream/", defaults={"alloc_id": ""})
@bp.get("/v1/client/fs/stream/<alloc_id>")
def stream(alloc_id: str) -> Response:
    if not alloc_id:
        raise HTTPError(400, _NO_ALLOC)
    _path()
    follow = go_bool("follow", request.args.get("follow", ""), 500) if request.args.get("follow") else True
    offset_raw = request.args.get("offset", "")
    offset = go_int("offset", offset_raw, 500) if offset_raw else 0
    origin = request.args.get("origin", "") or "start"
    if origin not in ("start", "end"):
        raise HTTPError(400, "origin must be start or end")
    f = _open(alloc_id)
    start = max(f.size() - offset, 0) if origin == "end" else max(offset, 0)
    resp = Response(frames(f, start, follow), mimetype="application/json")
    resp.timeout = None  # a followed file streams until the client leaves
    return resp


async def frames(f: OpenFile, offset: int, follow: bool) -> AsyncIterator[bytes]:
    """Nomad's StreamFramer over one open file: data frames, heartbeats, truncate and delete events."""
    try:
        pos, event, quiet_since = offset, "", time.monotonic()
        while True:
            data = f.read(pos, FRAME_SIZE)
            if data or event:
                pos += len(data)
                yield frame(data, pos, f.path, event)
                event, quiet_since = "", time.monotonic()
                if data:
                    continue
            if not follow:
                return
            if f.deleted():
                yield frame(b"", pos, f.path, FILE_DELETED)
                return
            if f.size() < pos:
                pos, event = 0, FILE_TRUNCATED
                continue
            if time.monotonic() - quiet_since >= HEARTBEAT_S:
                quiet_since = time.monotonic()
                yield b"{}"
            await asyncio.sleep(POLL_S)
    finally:
        f.close()
