"""write_jobs: files land whole, atomically, and a failure leaves nothing half-written."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from nomadmesh.errors import RenderError
from nomadmesh.render import write_jobs


def test_writes_every_file_and_no_temp_files(tmp_path: Path) -> None:
    out = tmp_path / "jobs" / "nested"
    paths = write_jobs({"a.nomad.hcl": "job a\n", "b.nomad.hcl": "job b\n"}, out)
    assert paths == [out / "a.nomad.hcl", out / "b.nomad.hcl"]
    assert (out / "a.nomad.hcl").read_text() == "job a\n"
    assert (out / "b.nomad.hcl").read_text() == "job b\n"
    assert sorted(os.listdir(out)) == ["a.nomad.hcl", "b.nomad.hcl"]
    assert (out / "a.nomad.hcl").stat().st_mode & 0o777 == 0o644


def test_replaces_existing_files_by_rename(tmp_path: Path) -> None:
    target = tmp_path / "a.nomad.hcl"
    target.write_text("old\n")
    before = target.stat().st_ino
    write_jobs({"a.nomad.hcl": "new ünïcode\n"}, tmp_path)
    assert target.read_text(encoding="utf-8") == "new ünïcode\n"
    assert target.stat().st_ino != before  # a new file moved into place, not rewritten in place


def test_a_file_that_already_holds_its_text_is_left_alone(tmp_path: Path) -> None:
    same, shorter, longer = tmp_path / "same.nomad.hcl", tmp_path / "shorter.nomad.hcl", tmp_path / "longer.nomad.hcl"
    for path in (same, shorter, longer):
        path.write_text("job é\n", encoding="utf-8")
    inodes = {path: path.stat().st_ino for path in (same, shorter, longer)}
    paths = write_jobs({same.name: "job é\n", shorter.name: "job\n", longer.name: "job é\n\n"}, tmp_path)
    assert paths == [same, shorter, longer]  # every path is given back, written or already up to date
    assert same.stat().st_ino == inodes[same]  # not created again
    assert shorter.read_text() == "job\n" and shorter.stat().st_ino != inodes[shorter]
    assert longer.read_text() == "job é\n\n" and longer.stat().st_ino != inodes[longer]


def test_something_in_the_way_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.nomad.hcl").write_text("old a\n")
    (tmp_path / "b.nomad.hcl").mkdir()  # a folder where the second job file should go
    (tmp_path / "b.nomad.hcl" / "keep").write_text("x")
    with pytest.raises(RenderError, match="is not a file; not writing any job"):
        write_jobs({"a.nomad.hcl": "new a\n", "b.nomad.hcl": "new b\n"}, tmp_path)
    assert (tmp_path / "a.nomad.hcl").read_text() == "old a\n"
    assert sorted(os.listdir(tmp_path)) == ["a.nomad.hcl", "b.nomad.hcl"]


def test_failure_while_staging_leaves_no_temp_files(tmp_path: Path) -> None:
    (tmp_path / "a.nomad.hcl").write_text("old a\n")
    with pytest.raises(RenderError, match="writing jobs failed"):
        # A lone surrogate cannot be encoded: the second file fails after the first was staged.
        write_jobs({"a.nomad.hcl": "new a\n", "b.nomad.hcl": "bad \ud800\n"}, tmp_path)
    assert (tmp_path / "a.nomad.hcl").read_text() == "old a\n"
    assert os.listdir(tmp_path) == ["a.nomad.hcl"]


def test_output_folder_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "jobs"
    blocker.write_text("not a folder")
    with pytest.raises(RenderError, match="cannot create output folder"):
        write_jobs({"a.nomad.hcl": "x"}, blocker)


@pytest.mark.parametrize("name", ["../evil.hcl", "sub/a.hcl", ".hidden"])
def test_refuses_names_that_are_not_plain_files(tmp_path: Path, name: str) -> None:
    with pytest.raises(RenderError, match="not a plain file name"):
        write_jobs({name: "x"}, tmp_path / "out")
    assert not (tmp_path / "out").exists()
