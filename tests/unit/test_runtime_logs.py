"""Task directories, log reading with offsets and origins, follow, and path-traversal refusal."""
from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

import pytest

from nomadmesh.agent.runtime import logs
from nomadmesh.agent.runtime.taskdir import AllocDirs


def test_layout_and_secrets_mode(tmp_path: Path) -> None:
    dirs = AllocDirs(tmp_path / "allocs")
    adir = dirs.build("a1", ["web", "sidecar"])
    for d in ("alloc/logs", "alloc/tmp", "alloc/data", "web/local", "web/secrets", "web/tmp", "sidecar/local"):
        assert (tmp_path / "allocs" / "a1" / d).is_dir(), d
    assert stat.S_IMODE((adir.task("web").secrets).stat().st_mode) == 0o700
    assert adir.stdout_path("web") == tmp_path / "allocs/a1/alloc/logs/web.stdout.0"
    dirs.build("a1", ["web"])  # idempotent
    assert dirs.list_ids() == ["a1"]
    dirs.remove("a1")
    dirs.remove("a1")  # a missing dir is fine
    assert not (tmp_path / "allocs" / "a1").exists()


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ".", "", "x\x00"])
def test_names_that_leave_the_dir_are_refused(tmp_path: Path, bad: str) -> None:
    dirs = AllocDirs(tmp_path / "allocs")
    with pytest.raises(ValueError, match=r"^invalid task name .*: must be one path component"):
        dirs.build("a1", [bad])
    with pytest.raises(ValueError, match=r"^invalid allocation id .*: must be one path component"):
        dirs.path(bad)
    with pytest.raises(ValueError, match=r"^invalid task name .*: must be one path component"):
        logs.read(tmp_path / "allocs" / "a1", bad, "stdout")


def _alloc_with_log(tmp_path: Path, data: bytes, task: str = "web") -> Path:
    adir = AllocDirs(tmp_path / "allocs").build("a1", [task])
    adir.stdout_path(task).write_bytes(data)
    return adir.root


def test_read_offsets_and_origins(tmp_path: Path) -> None:
    root = _alloc_with_log(tmp_path, b"0123456789")
    assert logs.read_bytes(root, "web", "stdout") == b"0123456789"
    assert logs.read_bytes(root, "web", "stdout", offset=4) == b"456789"
    assert logs.read_bytes(root, "web", "stdout", offset=3, origin="end") == b"789"
    assert logs.read_bytes(root, "web", "stdout", offset=99, origin="end") == b"0123456789"
    assert logs.read_bytes(root, "web", "stdout", offset=99) == b""
    assert logs.read_bytes(root, "web", "stdout", limit=4) == b"0123"
    chunk = logs.read(root, "web", "stdout", offset=2)[0]
    assert (chunk.file, chunk.offset) == ("alloc/logs/web.stdout.0", 10)  # offset just after the data
    assert logs.read_bytes(root, "web", "stderr") == b""  # nothing written yet


def test_read_spans_rotated_files_in_order(tmp_path: Path) -> None:
    root = _alloc_with_log(tmp_path, b"aaa")
    (root / "alloc/logs/web.stdout.1").write_bytes(b"bbb")
    (root / "alloc/logs/web.stdout.10").write_bytes(b"ccc")  # numeric, not lexical, order
    assert logs.read_bytes(root, "web", "stdout") == b"aaabbbccc"
    assert logs.read_bytes(root, "web", "stdout", offset=4) == b"bbccc"
    assert logs.read_bytes(root, "web", "stdout", offset=4, origin="end") == b"bccc"


@pytest.mark.parametrize(("kw", "message"), [
    ({"log_type": "stdin"}, "^invalid log type 'stdin'"),
    ({"origin": "middle"}, "^invalid origin 'middle'"),
    ({"offset": -1}, "^invalid offset -1"),
])
def test_invalid_parameters(tmp_path: Path, kw: dict, message: str) -> None:
    root = _alloc_with_log(tmp_path, b"x")
    args = {"log_type": "stdout", "offset": 0, "origin": "start", **kw}
    with pytest.raises(ValueError, match=message):
        logs.read(root, "web", args["log_type"], args["offset"], args["origin"])


def test_follow_yields_new_data_heartbeats_and_ends_when_done(tmp_path: Path) -> None:
    root = _alloc_with_log(tmp_path, b"first\n")
    path = root / "alloc/logs/web.stdout.0"
    finished = threading.Event()

    def writer() -> None:  # the silences are the point: heartbeats must come while nothing is written
        time.sleep(0.3)
        with open(path, "ab") as f:
            f.write(b"second\n")
        time.sleep(0.3)  # silence again: heartbeats, then the end
        finished.set()

    threading.Thread(target=writer, daemon=True).start()
    got = list(logs.follow(root, "web", "stdout", poll_s=0.02, heartbeat_s=0.1, timeout_s=10, done=finished.is_set))
    data = b"".join(c.data for c in got)
    assert data == b"first\nsecond\n"
    assert any(c.data == b"" for c in got), "no heartbeat during silence"
    assert got[-1].offset == len(data) or got[-1].data == b""


def test_follow_stops_on_event_and_timeout(tmp_path: Path) -> None:
    root = _alloc_with_log(tmp_path, b"x")
    stop = threading.Event()
    stop.set()
    assert [c.data for c in logs.follow(root, "web", "stdout", stop=stop)] == [b"x"]
    t0 = time.monotonic()
    list(logs.follow(root, "web", "stdout", offset=1, poll_s=0.02, timeout_s=0.2))
    assert time.monotonic() - t0 < 2
