"""Issue 12 item 3: a project's own templates (templates/ over the built-in pack, `nomad.template`
per service), `templates eject`, `init`, and the guarantees user templates keep."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import hcl2
import pytest
from click.testing import CliRunner, Result

from nomadmesh.cli.main import cli
from nomadmesh.jobspec import parse_hcl
from nomadmesh.pack import BUILTIN_DIR, builtin_names
from support.paths import SERVICES


def nm(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the sample services as a project root (services/ inside it)."""
    shutil.copytree(SERVICES, tmp_path / "services")
    return tmp_path


def render(project: Path, out: str = "jobs", *extra: str) -> Result:
    return nm("render", "--services", str(project / "services"), "--out", str(project / out), *extra)


def job_block(path: Path) -> dict:
    """The job block as python-hcl2 reads it (lenient: edited templates may add any attribute)."""
    (job,) = hcl2.loads(path.read_text())["job"]
    (body,) = job.values()
    return body


def files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def set_template(project: Path, service: str, template: str) -> None:
    path = project / "services" / service / "service.json"
    doc = json.loads(path.read_text())
    doc["nomad"]["template"] = template
    path.write_text(json.dumps(doc))


# --- templates eject ---------------------------------------------------------------------------

def test_ejected_pack_renders_the_samples_identically(project: Path) -> None:
    assert render(project, "builtin").exit_code == 0
    result = nm("templates", "eject", "--to", str(project / "templates"))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"wrote {project / 'templates' / n}" for n in builtin_names()]
    assert files(project / "templates") == files(BUILTIN_DIR)
    assert render(project, "ejected").exit_code == 0
    assert files(project / "ejected") == files(project / "builtin")
    # ...and the ejected pack is what rendered: an edit to it shows in the output.
    edit(project / "templates" / "job.nomad.hcl.j2", 'type = "service"', 'type = "service"\npriority = 70')
    assert render(project, "edited").exit_code == 0
    assert job_block(project / "edited" / "order.nomad.hcl")["priority"] == 70


def hash_of(path: Path) -> str:
    value: str = job_block(path)["meta"][0]["nomadmesh_hash"]
    return value


def test_an_edited_template_changes_the_definition_hash_so_plan_sees_the_change(project: Path) -> None:
    templates = eject_into(project)
    assert render(project, "ejected").exit_code == 0
    edit(templates / "_task.hcl.j2", "memory = [[ run.resources.memory | num ]]",
         "memory = [[ run.resources.memory | num ]]\nmemory_max = 512")
    assert render(project, "edited").exit_code == 0
    assert hash_of(project / "edited" / "order.nomad.hcl") != hash_of(project / "ejected" / "order.nomad.hcl")
    # Undoing the edit gives the built-in pack's hash back: only differences from it count.
    shutil.copyfile(BUILTIN_DIR / "_task.hcl.j2", templates / "_task.hcl.j2")
    assert render(project, "undone").exit_code == 0
    assert files(project / "undone") == files(project / "ejected")


def test_json_and_deploy_follow_a_project_pack(project: Path) -> None:
    """The Job JSON is the rendered HCL parsed, and deploy submits the rendered HCL: both follow an
    edited pack (before issue 12 item 1 they were built from the model and had to refuse)."""
    import json

    from nomadmesh.deploy.jobs import load_jobs

    templates = eject_into(project)
    edit(templates / "_task.hcl.j2", "memory = [[ run.resources.memory | num ]]",
         "memory = [[ run.resources.memory | num ]]\nmemory_max = 512")
    assert render(project, "json", "--format", "json").exit_code == 0
    job = json.loads((project / "json" / "tax.nomad.json").read_text())["Job"]
    (task,) = [t for t in job["TaskGroups"][0]["Tasks"] if t["Name"] == "tax"]
    assert task["Resources"]["MemoryMaxMB"] == 512
    sources = load_jobs(project / "services").sources
    assert set(sources) == {"ingress", "invoice", "order", "tax"}
    assert "memory_max = 512" in sources["tax"].hcl
    assert sources["tax"].hcl == (render(project, "hcl") and (project / "hcl" / "tax.nomad.hcl").read_text())


def test_eject_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    to = tmp_path / "templates"
    to.mkdir()
    (to / "_task.hcl.j2").write_text("mine\n")
    result = nm("templates", "eject", "--to", str(to))
    assert result.exit_code == 2
    assert "_task.hcl.j2" in result.stderr and "--force" in result.stderr
    assert files(to) == {"_task.hcl.j2": "mine\n"}  # nothing else written, nothing overwritten
    assert nm("templates", "eject", "--to", str(to), "--force").exit_code == 0
    assert files(to) == files(BUILTIN_DIR)


# --- project templates and nomad.template ------------------------------------------------------

def test_a_project_template_overrides_the_built_in_one_by_file_name(project: Path) -> None:
    (project / "templates").mkdir()
    canary = "canary = [[ u.canary | num ]]"
    partial = (BUILTIN_DIR / "_policies.hcl.j2").read_text().replace(canary, canary + '\nstagger = "45s"')
    (project / "templates" / "_policies.hcl.j2").write_text(partial)
    assert render(project).exit_code == 0
    (group,) = job_block(project / "jobs" / "tax.nomad.hcl")["group"]
    assert group['"tax"']["update"][0]["stagger"] == '"45s"'


def test_a_service_names_its_own_template(project: Path) -> None:
    (project / "templates").mkdir()
    kind = 'type = "service"'
    worker = (BUILTIN_DIR / "job.nomad.hcl.j2").read_text().replace(kind, kind + "\npriority = 30")
    (project / "templates" / "worker.nomad.hcl.j2").write_text(worker)
    set_template(project, "tax", "worker.nomad.hcl.j2")
    assert render(project).exit_code == 0
    assert job_block(project / "jobs" / "tax.nomad.hcl")["priority"] == 30
    assert "priority" not in job_block(project / "jobs" / "order.nomad.hcl")


def test_an_unknown_template_is_a_problem_naming_the_available_ones(project: Path) -> None:
    (project / "templates").mkdir()
    (project / "templates" / "worker.nomad.hcl.j2").write_text("")
    set_template(project, "tax", "wroker.nomad.hcl.j2")
    result = nm("validate", "--services", str(project / "services"))
    assert result.exit_code == 2
    tax = project / "services" / "tax" / "service.json"
    assert (f"{tax}: nomad.template: no template 'wroker.nomad.hcl.j2' in {project / 'templates'} or the built-in "
            "pack; available: job.nomad.hcl.j2, worker.nomad.hcl.j2") in result.stderr


@pytest.mark.parametrize("name", ["../../etc/passwd", "sub/job.nomad.hcl.j2", "..", "_task.hcl.j2", ".hidden"])
def test_template_names_that_leave_the_folder_or_name_a_partial_are_refused(project: Path, name: str) -> None:
    set_template(project, "tax", name)
    result = render(project)
    assert result.exit_code == 2
    assert f"services/tax/service.json: nomad.template: {name!r} " in result.stderr
    assert not (project / "jobs").exists()


# --- guarantees and errors ---------------------------------------------------------------------

def eject_into(project: Path) -> Path:
    assert nm("templates", "eject", "--to", str(project / "templates")).exit_code == 0
    return project / "templates"


@pytest.mark.parametrize("raw", [
    "[[ s.name ]]",  # no filter at all
    "[[ s.name ~ \"-x\" | q ]]",  # the filter binds to the literal; the concatenation is raw
    "[[ (s.name | q).lower() ]]",  # a method on escaped text gives plain text again
])
def test_a_template_that_prints_a_raw_value_is_an_error_and_nothing_is_written(project: Path, raw: str) -> None:
    job = eject_into(project) / "job.nomad.hcl.j2"
    edit(job, 'type = "service"', f'type = "service"\nnode_pool = {raw}')
    result = render(project)
    assert result.exit_code == 2
    line = line_of(job, "node_pool")
    assert f"{job}:{line}: service ingress: template prints a raw value" in result.stderr
    assert "Traceback" not in result.output
    assert not (project / "jobs").exists()


def test_an_undefined_name_in_a_partial_names_the_partial_line_and_service(project: Path) -> None:
    task = eject_into(project) / "_task.hcl.j2"
    edit(task, "driver = [[ run.driver | q ]]", "driver = [[ run.drvier | q ]]")
    result = render(project)
    assert result.exit_code == 2
    # ingress has no task, so the first service to include the partial is invoice.
    assert f"{task}:{line_of(task, 'drvier')}: service invoice: " in result.stderr
    assert "drvier" in result.stderr
    assert not (project / "jobs").exists()


def test_a_syntax_error_names_the_file_and_line(project: Path) -> None:
    policies = eject_into(project) / "_policies.hcl.j2"
    edit(policies, "attempts = [[ r.attempts | num ]]", "attempts = [[ r.attempts | num ")
    result = render(project)
    assert result.exit_code == 2
    assert f"{policies}:" in result.stderr and ": service ingress: " in result.stderr
    assert not (project / "jobs").exists()


# --- init --------------------------------------------------------------------------------------

INIT_FILES = [".gitignore", "README.md", "envs/README.md", "envs/prod.json", "nomadmesh.json",
              "services/hello/service.json"]


def tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_init_scaffolds_a_project_that_validates_and_renders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "shop"
    result = nm("init", str(target))
    assert result.exit_code == 0, result.output
    assert tree(target) == INIT_FILES
    assert (target / ".gitignore").read_text().split() == ["jobs/", ".nomadmesh/"]
    monkeypatch.chdir(target)
    assert nm("validate").exit_code == 0
    result = nm("render")
    assert result.exit_code == 0, result.output
    text = (target / "jobs" / "hello.nomad.hcl").read_text()
    job = parse_hcl(text, {"project_dir": str(target)} if 'variable "project_dir"' in text else None)
    assert job["ID"] == "hello" and job["TaskGroups"][0]["Services"][0]["Connect"] is not None
    # Running it again on what it made (plus nothing else) is fine and changes nothing.
    (target / "jobs" / "hello.nomad.hcl").unlink()
    (target / "jobs").rmdir()
    before = {n: (target / n).read_bytes() for n in INIT_FILES}
    assert nm("init").exit_code == 0
    assert {n: (target / n).read_bytes() for n in INIT_FILES} == before


@pytest.mark.parametrize(("existing", "reported", "why"), [
    ("notes.txt", "notes.txt", "is not something init writes"),
    ("services/other/service.json", "services/other", "is not something init writes"),  # the folder, once
    ("README.md", "README.md", "exists with other content"),
])
def test_init_refuses_a_folder_holding_anything_else_and_writes_nothing(
    tmp_path: Path, existing: str, reported: str, why: str
) -> None:
    (tmp_path / existing).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / existing).write_text("mine\n")
    result = nm("init", str(tmp_path))
    assert result.exit_code == 2
    assert f"not initialising: {tmp_path / reported} {why}" in result.stderr
    assert tree(tmp_path) == [existing]
    assert (tmp_path / existing).read_text() == "mine\n"
