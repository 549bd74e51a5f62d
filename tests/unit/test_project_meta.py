"""`meta` in nomadmesh.json's project and in an env file's `project`: string -> string, keys like a
service's meta keys, written into every job's `meta` beside nomadmesh's own keys, which the project
may not use (issue 12 item 5). An env file's project meta deep-merges over the project's."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nomadmesh.definitions import load_spec
from nomadmesh.errors import SpecError
from nomadmesh.jobspec import canonicalize, parse_hcl, validate
from nomadmesh.render import render_hcl
from nomadmesh.render.ownership import HASH_KEY, MANAGED_KEY, PROJECT_KEY, VERSION_KEY
from support.spec_builders import definition, write_services


def _project(tmp_path: Path, project: dict[str, Any], env: dict[str, Any] | None = None) -> Path:
    services = write_services(tmp_path, {"a": definition("a", 5000), "b": definition("b", 5001)})
    (tmp_path / "nomadmesh.json").write_text(json.dumps(project))
    if env is not None:
        (tmp_path / "envs").mkdir()
        (tmp_path / "envs" / "prod.json").write_text(json.dumps(env))
    return services


def _job_meta(services: Path, name: str, env: str | None = None) -> dict[str, str]:
    spec = load_spec(services, env=env)
    job = canonicalize(parse_hcl(render_hcl(spec.service(name), spec.project, spec.root)))
    assert validate(job) == []
    return job["Meta"]


def _problems(services: Path, env: str | None = None) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(services, env=env)
    return [str(p) for p in caught.value.problems]


def test_project_meta_is_in_every_job_beside_nomadmeshs_own_keys(tmp_path: Path) -> None:
    services = _project(tmp_path, {"meta": {"team": "shop", "cost_center": "cc-42"}})
    for name in ("a", "b"):
        meta = _job_meta(services, name)
        assert {k: meta[k] for k in ("team", "cost_center")} == {"team": "shop", "cost_center": "cc-42"}
        assert set(meta) == {"team", "cost_center", MANAGED_KEY, HASH_KEY, VERSION_KEY, PROJECT_KEY}
        assert meta[MANAGED_KEY] == "true"


def test_an_env_files_project_meta_deep_merges_over_the_projects(tmp_path: Path) -> None:
    services = _project(tmp_path, {"meta": {"team": "shop", "tier": "dev"}},
                        {"project": {"meta": {"tier": "prod", "pager": "on"}}})
    meta = _job_meta(services, "a", env="prod")
    assert {k: meta[k] for k in ("team", "tier", "pager")} == {"team": "shop", "tier": "prod", "pager": "on"}
    assert "pager" not in _job_meta(services, "a")


def test_project_meta_is_part_of_the_definition_hash(tmp_path: Path) -> None:
    services = _project(tmp_path, {"meta": {"team": "shop"}})
    before = _job_meta(services, "a")[HASH_KEY]
    (tmp_path / "nomadmesh.json").write_text(json.dumps({"meta": {"team": "web"}}))
    assert _job_meta(services, "a")[HASH_KEY] != before  # a meta change is a change plan must show


@pytest.mark.parametrize(("meta", "expected"), [
    ({"nomadmesh_hash": "0"}, "meta.nomadmesh_hash: keys starting with 'nomadmesh_' are nomadmesh's own job meta "
                              "(ownership and the definition hash); choose another name"),
    ({"a.b": "x"}, "meta['a.b']: key 'a.b' must be letters, digits and underscores, not starting with a digit"),
    ({"n": 1}, "meta.n: must be a string, got number 1"),
    (["team"], "meta: must be an object of strings, got array"),
], ids=["reserved", "bad key", "not a string", "not an object"])
def test_bad_project_meta_is_refused_with_the_field(tmp_path: Path, meta: Any, expected: str) -> None:
    services = _project(tmp_path, {"meta": meta})
    assert _problems(services) == [f"{tmp_path / 'nomadmesh.json'}: {expected}"]


def test_bad_meta_in_an_env_file_names_the_env_file(tmp_path: Path) -> None:
    services = _project(tmp_path, {"meta": {"team": "shop"}}, {"project": {"meta": {"nomadmesh_managed": "false"}}})
    assert _problems(services, env="prod") == [
        "envs/prod.json: project.meta.nomadmesh_managed: keys starting with 'nomadmesh_' are nomadmesh's own "
        "job meta (ownership and the definition hash); choose another name"]


def test_job_meta_in_nomad_job_points_at_the_project_meta(tmp_path: Path) -> None:
    doc = definition("a", 5000)
    doc["nomad"]["job"] = {"meta": {"team": "shop"}}
    services = write_services(tmp_path, {"a": doc})
    assert [p.split(": ", 1)[1] for p in _problems(services)] == [
        "nomad.job.meta: is written by nomadmesh; use nomadmesh.json's meta"]
