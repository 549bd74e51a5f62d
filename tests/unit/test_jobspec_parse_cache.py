"""The content-addressed parse cache: a hit is the parse's own result without parsing, any change to
text, variables or parser is a miss, errors and damaged files are never served; one file, written
once per render."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from nomadmesh.cli.main import cli
from nomadmesh.definitions import load_spec
from nomadmesh.definitions.model import Spec
from nomadmesh.jobspec import JobspecError, parse_cache, parse_hcl
from nomadmesh.jobspec.parse_cache import FILE_NAME, ParseCache, cache_key, cached_parse_hcl
from nomadmesh.render import render
from support.paths import SERVICES

JOB = '''
variable "dir" {
  type = string
}

job "web" {
  group "web" {
    task "web" {
      driver = "raw_exec"
      config {
        command = "${var.dir}/run"
        args    = ["$${NOT_HCL}", "${NOMAD_PORT_http}"]
      }
    }
  }
}
'''
VARS = {"dir": "/srv/web"}


def _no_parse(*_: Any) -> Any:
    raise AssertionError("parsed although the result was cached")


def test_a_second_parse_of_the_same_text_is_read_from_the_cache(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    first = cached_parse_hcl(JOB, VARS, tmp_path)
    assert first == parse_hcl(JOB, VARS)
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]
    monkeypatch.setattr(parse_cache, "parse_hcl", _no_parse)
    assert cached_parse_hcl(JOB, VARS, tmp_path) == first


def test_other_text_variables_or_parser_are_other_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached_parse_hcl(JOB, VARS, tmp_path)
    other_vars = cached_parse_hcl(JOB, {"dir": "/opt/web"}, tmp_path)
    assert other_vars["TaskGroups"][0]["Tasks"][0]["Config"]["command"] == "/opt/web/run"
    other_text = JOB.replace('"web"', '"api"')
    assert cached_parse_hcl(other_text, VARS, tmp_path)["ID"] == "api"
    cache = ParseCache(tmp_path)  # one slot per job name: its latest parse
    assert cache.lookup("job", cache_key(other_text, VARS)) is not None
    assert cache.lookup("job", cache_key(JOB, VARS)) is None
    key = cache_key(JOB, VARS)
    monkeypatch.setattr(parse_cache, "parser_identity", lambda: "another parser version")
    assert cache_key(JOB, VARS) != key


@pytest.mark.parametrize("damage", ['{"job": ["trunc', '[]', '{"job": "x"}', '{"job": ["%s", "not json"]}'])
def test_a_damaged_file_is_parsed_again_and_rewritten(tmp_path: Path, damage: str) -> None:
    stored = tmp_path / FILE_NAME
    stored.write_text(damage.replace("%s", cache_key(JOB, VARS)))
    assert cached_parse_hcl(JOB, VARS, tmp_path) == parse_hcl(JOB, VARS)
    assert "trunc" not in stored.read_text() and "not json" not in stored.read_text()
    assert ParseCache(tmp_path).lookup("job", cache_key(JOB, VARS)) is not None


def test_errors_are_not_cached(tmp_path: Path) -> None:
    with pytest.raises(JobspecError):
        cached_parse_hcl('job "x" {\n  group "g" {\n', None, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_written_only_means_nothing_is_kept(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    assert cached_parse_hcl(JOB, VARS, not_a_folder / "cache") == parse_hcl(JOB, VARS)


def test_render_json_with_the_cache_is_the_render_without_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_spec(SERVICES)
    plain = render(spec, "json")
    assert render(spec, "json", parse_cache=tmp_path) == plain  # cold: fills the cache
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]
    written = (tmp_path / FILE_NAME).stat().st_mtime_ns
    monkeypatch.setattr(parse_cache, "parse_hcl", _no_parse)
    assert render(spec, "json", parse_cache=tmp_path) == plain  # warm: read back, nothing parsed
    assert (tmp_path / FILE_NAME).stat().st_mtime_ns == written  # nor written again


def test_cli_render_json_keeps_its_parse_cache_in_the_projects_dot_nomadmesh(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(SERVICES, tmp_path / "project" / "services")
    monkeypatch.chdir(tmp_path)
    args = ["render", "--services", "project/services", "--out", "jobs", "--format", "json"]
    assert CliRunner().invoke(cli, args, catch_exceptions=False).exit_code == 0
    cold = {p.name: p.read_text() for p in (tmp_path / "jobs").iterdir()}
    cache = ParseCache(tmp_path / "project" / ".nomadmesh" / "cache" / "jobspec")
    assert len(cold) == len(load_spec(SERVICES).services)
    assert cache.names() == sorted(name.removesuffix(".nomad.json") for name in cold)
    monkeypatch.setattr(parse_cache, "parse_hcl", _no_parse)
    assert CliRunner().invoke(cli, args, catch_exceptions=False).exit_code == 0
    assert {p.name: p.read_text() for p in (tmp_path / "jobs").iterdir()} == cold
    assert not (tmp_path / ".nomadmesh").exists()


def test_cached_json_is_byte_identical_for_hostile_values(tmp_path: Path) -> None:
    samples = load_spec(SERVICES)
    hostile = (("A", 'line1\nline2\r\ttab "q" \\ ${x} $${y} %{z}'), ("B", "é ü \u2028 \U0001f600 \x01"))
    services = tuple(dataclasses.replace(s, run=dataclasses.replace(s.run, env=hostile)) for s in samples.services)
    spec = Spec(project=samples.project, services=services, root=samples.root)
    plain = render(spec, "json")
    assert '\\u2028' not in "".join(plain.values()) and "\u2028" in "".join(plain.values())
    assert render(spec, "json", parse_cache=tmp_path) == plain  # cold
    assert render(spec, "json", parse_cache=tmp_path) == plain  # warm
