"""Reading task logs for the Nomad logs endpoint (`/v1/client/fs/logs/:alloc`).

Task output lives in `<alloc>/alloc/logs/<task>.<type>.<index>`. We write index 0 only, but read
every index in order, like Nomad (which rotates), so offsets behave the same: `origin=start`
counts from the beginning of the oldest file, `origin=end` back from the end of the newest.
Each chunk carries the file it came from and the offset just after its data within that file,
which is what a Nomad StreamFrame's `File` and `Offset` hold; the HTTP layer does the framing.

Task and type come from a URL, so both are validated: anything that could leave the logs
directory (`../x`, `a/b`) is a ValueError.
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nomadmesh.agent.runtime.taskdir import check_component

LOG_TYPES = ("stdout", "stderr")
ORIGINS = ("start", "end")
CHUNK = 64 * 1024  # Nomad's frame size is 64 KiB


@dataclass(frozen=True)
class LogChunk:
    data: bytes
    file: str  # relative to the allocation dir, e.g. "alloc/logs/web.stdout.0"
    offset: int  # offset within `file` just after `data`


def _validate(task: str, log_type: str, offset: int, origin: str) -> None:
    check_component(task, "task name")
    if log_type not in LOG_TYPES:
        raise ValueError(f"invalid log type {log_type!r}: must be one of {', '.join(LOG_TYPES)}")
    if origin not in ORIGINS:
        raise ValueError(f"invalid origin {origin!r}: must be one of {', '.join(ORIGINS)}")
    if offset < 0:
        raise ValueError(f"invalid offset {offset}: must not be negative")


def log_files(alloc_root: Path, task: str, log_type: str) -> list[Path]:
    """The task's log files of one type, oldest first."""
    check_component(task, "task name")
    logs = Path(alloc_root) / "alloc" / "logs"
    pattern = re.compile(re.escape(f"{task}.{log_type}.") + r"(\d+)$")
    found = [(int(m.group(1)), p) for p in logs.glob(f"{task}.{log_type}.*")
             if (m := pattern.match(p.name))] if logs.is_dir() else []
    return [p for _, p in sorted(found)]


def _start_position(files: list[Path], offset: int, origin: str) -> tuple[int, int]:
    """(file index, offset in that file) where reading begins."""
    if not files:
        return 0, 0
    sizes = [p.stat().st_size for p in files]
    if origin == "start":
        for i, size in enumerate(sizes):
            if offset <= size or i == len(files) - 1:
                return i, min(offset, size)
            offset -= size
    for i in range(len(files) - 1, -1, -1):
        if offset <= sizes[i] or i == 0:
            return i, max(0, sizes[i] - offset)
        offset -= sizes[i]
    return 0, 0  # unreachable: the loops always return


def _rel(alloc_root: Path, path: Path) -> str:
    return str(path.relative_to(alloc_root))


def read(alloc_root: Path, task: str, log_type: str, offset: int = 0, origin: str = "start",
         limit: int | None = None) -> list[LogChunk]:
    """What is in the logs now, from the given position; at most `limit` bytes in all."""
    _validate(task, log_type, offset, origin)
    alloc_root = Path(alloc_root)
    files = log_files(alloc_root, task, log_type)
    idx, pos = _start_position(files, offset, origin)
    chunks: list[LogChunk] = []
    left = limit
    for path in files[idx:]:
        with open(path, "rb") as f:
            f.seek(pos)
            while left is None or left > 0:
                data = f.read(CHUNK if left is None else min(CHUNK, left))
                if not data:
                    break
                pos += len(data)
                left = None if left is None else left - len(data)
                chunks.append(LogChunk(data, _rel(alloc_root, path), pos))
        pos = 0
    return chunks


def read_bytes(alloc_root: Path, task: str, log_type: str, offset: int = 0, origin: str = "start",
               limit: int | None = None) -> bytes:
    return b"".join(c.data for c in read(alloc_root, task, log_type, offset, origin, limit))


def follow(alloc_root: Path, task: str, log_type: str, offset: int = 0, origin: str = "start", *,
           poll_s: float = 0.2, heartbeat_s: float = 10.0, timeout_s: float | None = None,
           stop: threading.Event | None = None, done: Callable[[], bool] | None = None) -> Iterator[LogChunk]:
    """Yield data as it is written; an empty chunk every `heartbeat_s` of silence (so the caller can
    send a heartbeat frame and notice a gone client). Ends when `stop` is set, after `timeout_s`, or
    once `done()` (e.g. "the task is dead") is true and everything written has been yielded."""
    _validate(task, log_type, offset, origin)
    alloc_root = Path(alloc_root)
    files = log_files(alloc_root, task, log_type)
    idx, pos = _start_position(files, offset, origin)
    started = last_sent = time.monotonic()
    while True:
        finished = done() if done is not None else False  # checked before reading: no lost tail
        files = log_files(alloc_root, task, log_type)
        sent = False
        while idx < len(files):
            path = files[idx]
            try:
                with open(path, "rb") as f:
                    f.seek(pos)
                    data = f.read(CHUNK)
            except FileNotFoundError:
                data = b""
            if data:
                pos += len(data)
                sent = True
                yield LogChunk(data, _rel(alloc_root, path), pos)
                continue
            if idx + 1 < len(files):  # rotated: move on once this file is drained
                idx, pos = idx + 1, 0
                continue
            break
        now = time.monotonic()
        if sent:
            last_sent = now
            continue
        if finished or (stop is not None and stop.is_set()):
            return
        if timeout_s is not None and now - started >= timeout_s:
            return
        if now - last_sent >= heartbeat_s:
            last_sent = now
            current = files[idx] if idx < len(files) else None
            yield LogChunk(b"", _rel(alloc_root, current) if current else "", pos)
        if stop is not None:
            stop.wait(poll_s)
        else:
            time.sleep(poll_s)
