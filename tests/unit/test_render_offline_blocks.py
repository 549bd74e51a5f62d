"""`render --format json` of a job with a Nomad block the offline jobspec parser does not decode
(spread, identity, scaling...): a clear `file: field: message` naming the block and what
to use instead, exit 2, nothing written; never "does not parse back" as if it were a template bug.
The HCL of the same job still renders (issue 12 item 1/4)."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from nomadmesh.cli.main import cli
from nomadmesh.jobspec import parse_hcl
from nomadmesh.render.renderer import NOT_OFFLINE
from support.spec_builders import definition, edit, write_services

VAULT_AND_VOLUME = edit(edit(definition("a", 5000), "nomad.group", {"spread": {"attribute": "x"}}),
                        "nomad.task", {"vault": {"policies": ["db"]}, "identity": {"env": True}})


def _render(tmp_path: Path, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["render", "--services", str(tmp_path / "services"), "--out",
                                 str(tmp_path / "jobs"), *args])
    return r.exit_code, r.output


def test_json_of_a_job_with_blocks_not_decoded_offline_says_so_and_writes_nothing(tmp_path: Path) -> None:
    write_services(tmp_path, {"a": VAULT_AND_VOLUME, "b": definition("b", 5001)})
    code, output = _render(tmp_path, "--format", "json")
    source = tmp_path / "services" / "a" / "service.json"
    assert code == 2
    assert output == "".join(f"{prefix}{source}: {field}: {NOT_OFFLINE}\n" for prefix, field in [
        ("Error: ", "nomad.group.spread"), ("", "nomad.task.identity")])
    assert not (tmp_path / "jobs").exists()


def test_the_hcl_of_that_job_still_renders_with_the_blocks(tmp_path: Path) -> None:
    write_services(tmp_path, {"a": VAULT_AND_VOLUME})
    code, output = _render(tmp_path)
    assert code == 0, output
    text = (tmp_path / "jobs" / "a.nomad.hcl").read_text()
    assert "spread {" in text and "vault {" in text and "identity {" in text


def test_a_nested_block_not_decoded_is_named_by_its_path(tmp_path: Path) -> None:
    doc = edit(definition("a", 5000), "nomad.task", {"template": [
        {"data": "x", "destination": "local/x"}, {"data": "y", "destination": "local/y", "wait": {"min": "2s"}}]})
    write_services(tmp_path, {"a": doc})
    code, output = _render(tmp_path, "--format", "json")
    assert code == 2 and output.startswith(f"Error: {tmp_path / 'services' / 'a' / 'service.json'}: "
                                           f"nomad.task.template[1].wait: Nomad has it, but")


def test_a_project_template_writing_such_a_block_gets_the_same_reason(tmp_path: Path) -> None:
    from nomadmesh.pack import BUILTIN_DIR

    write_services(tmp_path, {"a": definition("a", 5000)})
    (tmp_path / "templates").mkdir()
    job = (BUILTIN_DIR / "job.nomad.hcl.j2").read_text()
    anchor = 'type = "service"\n'
    assert anchor in job
    (tmp_path / "templates" / "job.nomad.hcl.j2").write_text(
        job.replace(anchor, anchor + 'spread {\nattribute = "${node.datacenter}"\n}\n', 1))
    code, output = _render(tmp_path, "--format", "json")
    assert code == 2, output
    assert output == f"Error: {tmp_path / 'services' / 'a' / 'service.json'}: job 'a': 'spread': {NOT_OFFLINE}\n"
    assert "does not parse back" not in output


def test_blocks_the_parser_decodes_still_render_to_json(tmp_path: Path) -> None:
    doc = edit(definition("a", 5000), "nomad.group", {"constraint": [{"attribute": "${attr.kernel.name}",
                                                                      "value": "linux"}]})
    write_services(tmp_path, {"a": doc})
    code, output = _render(tmp_path, "--format", "json")
    assert code == 0, output
    job = json.loads((tmp_path / "jobs" / "a.nomad.json").read_text())["Job"]
    hcl_job = parse_hcl(_hcl(tmp_path))
    assert job["TaskGroups"][0]["Constraints"] == hcl_job["TaskGroups"][0]["Constraints"] == [
        {"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="}]


def _hcl(tmp_path: Path) -> str:
    code, output = _render(tmp_path)
    assert code == 0, output
    return (tmp_path / "jobs" / "a.nomad.hcl").read_text()
