"""`nomad.job` / `group` / `task` / `sidecar_task`: any Nomad block in JSON, checked against the
jobspec schema with exact errors, and rendered so that the HCL parsed back states it (issue 12 item 4)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nomadmesh.definitions import load_spec
from nomadmesh.jobspec import canonicalize, parse_hcl, validate
from nomadmesh.render import render_hcl
from support.spec_builders import definition, edit, problems, write_services

A = definition("a", 8080)
LINUX = {"attribute": "${attr.kernel.name}", "value": "linux"}
TEMPLATE = {"data": "KEY={{ env \"NOMAD_ALLOC_ID\" }}\n", "destination": "local/app.env", "env": True}


def one(tmp_path: Path, doc: Any) -> list[tuple[str, str]]:
    return [(field, msg) for _, field, msg in problems(tmp_path, {"a": doc})]


def job(tmp_path: Path, doc: Any) -> dict[str, Any]:
    spec = load_spec(write_services(tmp_path, {"a": doc}))
    out = canonicalize(parse_hcl(render_hcl(spec.service("a"), spec.project)))
    assert validate(out) == []
    return out


@pytest.mark.parametrize(("doc", "expected"), [
    (edit(A, "nomad.group", [LINUX]), [("nomad.group", "must be an object (Nomad's group block in JSON), got array")]),
    (edit(A, "nomad.group", {"constraint": [{**LINUX, "x": 1}]}),
     [("nomad.group.constraint[0].x", "unknown Nomad attribute or block; expected one of attribute, operator, "
                                      "value")]),
    (edit(A, "nomad.group", {"constrant": [LINUX]}),
     [("nomad.group.constrant", "unknown Nomad attribute or block; did you mean 'constraint'?")]),
    (edit(A, "nomad.group", {"count": 3}), [("nomad.group.count", "is written by nomadmesh; use nomad.count")]),
    (edit(A, "nomad.task", {"driver": "exec"}), [("nomad.task.driver", "is written by nomadmesh; use nomad.driver")]),
    (edit(A, "nomad.task", {"kill_timeout": True}),
     [("nomad.task.kill_timeout", "must be a duration, got boolean true")]),
    (edit(A, "nomad.task", {"template": ["x"]}),
     [("nomad.task.template[0]", "must be an object (template block), got string 'x'")]),
    (edit(A, "nomad.job", {"priority": "high"}), [("nomad.job.priority", "must be an integer, got string 'high'")]),
    (edit(A, "nomad.task", {"meta": {"a b": "x"}}),
     [("nomad.task.meta['a b']", "is not an HCL name: letters, digits, '_' and '-', not starting with a digit")]),
    (edit(edit(A, "service.connect", "_delete"), "nomad.sidecar_task", {"resources": {"cpu": 50}}),
     [("nomad.sidecar_task", "needs a Connect service: only a sidecar has a sidecar_task")]),
], ids=["not object", "unknown nested key", "misspelt block", "owned count", "owned driver", "bad duration",
        "template not object", "priority string", "meta key", "sidecar_task without connect"])
def test_bad_blocks_are_refused_with_the_field(tmp_path: Path, doc: Any, expected: list[tuple[str, str]]) -> None:
    assert one(tmp_path, doc) == expected


def test_group_constraint_task_template_artifact_and_job_priority_render_and_parse_back(tmp_path: Path) -> None:
    doc = edit(A, "nomad.group", {"constraint": [LINUX], "shutdown_delay": "5s"})
    doc = edit(doc, "nomad.task", {"template": [TEMPLATE], "artifact": [{"source": "https://example.com/a.tgz"}],
                                   "kill_timeout": "20s", "meta": {"team": "pay"}})
    doc = edit(doc, "nomad.job", {"priority": 70, "constraint": [{"attribute": "${node.class}", "value": "web"}]})
    out = job(tmp_path, doc)
    assert out["Priority"] == 70
    assert out["Constraints"][0]["LTarget"] == "${node.class}" and out["Constraints"][0]["RTarget"] == "web"
    (group,) = out["TaskGroups"]
    assert [(c["LTarget"], c["RTarget"]) for c in group["Constraints"]] == [("${attr.kernel.name}", "linux")]
    assert group["ShutdownDelay"] == 5_000_000_000
    task = group["Tasks"][0]
    assert (task["Templates"][0]["EmbeddedTmpl"], task["Templates"][0]["DestPath"]) == (TEMPLATE["data"],
                                                                                        "local/app.env")
    assert task["Templates"][0]["Envvars"] is True
    assert task["Artifacts"][0]["GetterSource"] == "https://example.com/a.tgz"
    assert task["KillTimeout"] == 20_000_000_000 and task["Meta"] == {"team": "pay"}


def test_sidecar_task_resources(tmp_path: Path) -> None:
    out = job(tmp_path, edit(A, "nomad.sidecar_task", {"resources": {"cpu": 50, "memory": 64}}))
    side = out["TaskGroups"][0]["Services"][0]["Connect"]["SidecarTask"]
    assert (side["Resources"]["CPU"], side["Resources"]["MemoryMB"]) == (50, 64)


def test_canary_tags_and_meta_reach_the_service(tmp_path: Path) -> None:
    doc = edit(edit(A, "nomad.canary_tags", ["canary"]), "nomad.canary_meta", {"track": "canary"})
    (service,) = job(tmp_path, doc)["TaskGroups"][0]["Services"]
    assert service["CanaryTags"] == ["canary"] and service["CanaryMeta"] == {"track": "canary"}


@pytest.mark.parametrize(("doc", "expected"), [
    (edit(A, "nomad.canary_tags", "canary"), [("nomad.canary_tags", "must be an array, got string 'canary'")]),
    (edit(A, "nomad.canary_meta", {"track": 1}), [("nomad.canary_meta.track", "must be a string, got number 1")]),
], ids=["tags", "meta"])
def test_bad_canary_fields(tmp_path: Path, doc: Any, expected: list[tuple[str, str]]) -> None:
    assert one(tmp_path, doc) == expected
