"""runtime.artifacts on plain temp dirs: go-getter's destination rules, and no write ever leaves the
allocation, whatever a task planted in its own directory."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from nomadmesh.agent.runtime.artifacts import ArtifactError, fetch, unsupported


def task_dir(tmp_path: Path) -> Path:
    t = tmp_path / "alloc-id" / "web"
    (t / "local").mkdir(parents=True)
    return t


def test_a_symlink_planted_in_the_destination_is_not_followed(tmp_path: Path) -> None:
    t = task_dir(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (t / "local").rmdir()
    (t / "local").symlink_to(outside)  # the task's user owns its dir and could do this
    src = tmp_path / "hello.txt"
    src.write_text("hi")
    with pytest.raises(ArtifactError, match="is not a directory"):
        fetch(t, str(src), "local/")
    assert list(outside.iterdir()) == []


def test_an_archive_cannot_write_outside_its_destination(tmp_path: Path) -> None:
    t = task_dir(tmp_path)
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        data = b"pwned"
        info = tarfile.TarInfo("../../../escaped")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ArtifactError, match="error unpacking"):
        fetch(t, str(evil), "local/")
    assert not (tmp_path / "escaped").exists() and not (tmp_path.parent / "escaped").exists()


def test_archive_false_copies_the_archive_itself(tmp_path: Path) -> None:
    t = task_dir(tmp_path)
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w"):
        pass
    fetch(t, f"file://{archive}", "local/", options={"archive": "false"})
    assert (t / "local" / "a.tar").read_bytes() == archive.read_bytes()


@pytest.mark.parametrize(("source", "ok"), [("/abs/x", True), ("file:///abs/x", True), ("file::/abs/x", True),
                                            ("http://127.0.0.1:8080/x", True), ("http://localhost/x", True),
                                            ("https://[::1]/x", True), ("http://10.0.0.1/x", False),
                                            ("https://example.com/x", False), ("relative/x", False),
                                            ("git::https://github.com/a/b", False), ("file://host/x", False)])
def test_only_local_and_loopback_sources_are_supported(source: str, ok: bool) -> None:
    assert (unsupported(source, None) is None) is ok
    assert unsupported("/abs/x", {"headers": "x"}) is not None
