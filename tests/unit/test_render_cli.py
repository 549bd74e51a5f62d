"""`nomadmesh render` end to end through click, on copies of the sample services in tmp dirs."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import nomadmesh.definitions
from nomadmesh.cli.main import cli
from nomadmesh.jobspec import parse_hcl
from support.paths import SERVICES

pytestmark = pytest.mark.skipif(
    not hasattr(nomadmesh.definitions, "load_spec"), reason="nomadmesh.definitions.load_spec not written yet"
)
SAMPLES = SERVICES


@pytest.fixture
def services(tmp_path: Path) -> Path:
    target = tmp_path / "services"
    shutil.copytree(SAMPLES, target)
    return target


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["render", *args], catch_exceptions=False)


def test_writes_one_hcl_job_per_service(services: Path, tmp_path: Path) -> None:
    out = tmp_path / "jobs"
    result = run("--services", str(services), "--out", str(out))
    assert result.exit_code == 0, result.output
    names = ["ingress.nomad.hcl", "invoice.nomad.hcl", "order.nomad.hcl", "tax.nomad.hcl"]
    assert result.stdout.splitlines() == [f"wrote {out / n}" for n in names]
    assert sorted(p.name for p in out.iterdir()) == names
    order = parse_hcl((out / "order.nomad.hcl").read_text(), {"project_dir": str(services.resolve().parent)})
    assert order["ID"] == "order"
    assert order["Meta"]["nomadmesh_managed"] == "true"
    connect = order["TaskGroups"][0]["Services"][0]["Connect"]
    assert connect["SidecarService"]["Proxy"]["Upstreams"] == [{"DestinationName": "invoice", "LocalBindPort": 6001}]


def test_same_input_gives_byte_identical_files(services: Path, tmp_path: Path) -> None:
    run("--services", str(services), "--out", str(tmp_path / "a"))
    run("--services", str(services), "--out", str(tmp_path / "b"))
    for f in (tmp_path / "a").iterdir():
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes()


def test_json_format_writes_the_api_job(services: Path, tmp_path: Path) -> None:
    out = tmp_path / "jobs"
    result = run("--services", str(services), "--out", str(out), "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "invoice.nomad.json").read_text())
    assert set(doc) == {"Job"}
    job = doc["Job"]
    assert (job["ID"], job["Type"]) == ("invoice", "service")
    assert job["TaskGroups"][0]["Networks"][0]["Mode"] == "bridge"
    assert job["TaskGroups"][0]["Tasks"][0]["Env"]["PORT"] == "5001"
    run("--services", str(services), "--out", str(tmp_path / "hcl"))
    assert job == parse_hcl((tmp_path / "hcl" / "invoice.nomad.hcl").read_text(),
                           {"project_dir": str(services.resolve().parent)})


def test_two_clones_render_byte_identical_files_and_hashes(tmp_path: Path) -> None:
    """No machine path in a job file: work_dir is `${var.project_dir}/services/<name>`, the folder
    given at parse time, so the same project in two places renders the same bytes and hash."""
    outs = []
    for clone in ("one/deep/clone", "two"):
        services = tmp_path / clone / "services"
        shutil.copytree(SAMPLES, services)
        out = tmp_path / clone / "jobs"
        assert run("--services", str(services), "--out", str(out)).exit_code == 0
        outs.append(out)
    names = sorted(p.name for p in outs[0].iterdir())
    assert names == sorted(p.name for p in outs[1].iterdir()) and names
    for name in names:
        text = (outs[0] / name).read_text()
        assert text == (outs[1] / name).read_text(), name
        assert str(tmp_path) not in text
    order = (outs[0] / "order.nomad.hcl").read_text()
    assert 'variable "project_dir" {' in order and 'work_dir = "${var.project_dir}/services/order"' in order
    # The value given at parse time is the folder's own: each clone runs its own files.
    for out in outs:
        job = parse_hcl((out / "order.nomad.hcl").read_text(), {"project_dir": str(out.parent.resolve())})
        assert job["TaskGroups"][0]["Tasks"][0]["Config"]["work_dir"] == str(out.parent.resolve() / "services/order")


def test_named_services_only(services: Path, tmp_path: Path) -> None:
    out = tmp_path / "jobs"
    result = run("tax", "--services", str(services), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.iterdir()] == ["tax.nomad.hcl"]


def test_unknown_service_name_exits_2_and_writes_nothing(services: Path, tmp_path: Path) -> None:
    out = tmp_path / "jobs"
    result = run("ordr", "--services", str(services), "--out", str(out))
    assert result.exit_code == 2
    assert "unknown service 'ordr' (did you mean 'order'?)" in result.stderr
    assert not out.exists()


def test_invalid_definitions_exit_2_and_write_nothing(services: Path, tmp_path: Path) -> None:
    (services / "tax" / "service.json").write_text('{"service": {"name": "tax",, }}')
    out = tmp_path / "jobs"
    result = run("--services", str(services), "--out", str(out))
    assert result.exit_code == 2
    assert "tax" in result.stderr and "service.json" in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert not out.exists()


def test_render_imports_no_http_client(services: Path, tmp_path: Path) -> None:
    """The command group imports each command's module when it is used, so `nomadmesh render` (CPU
    bound, run on every edit) does not pay for deploy's HTTP clients (requests, python-consul)."""
    import subprocess
    import sys

    code = ("import sys; from nomadmesh.cli.main import cli; "
            f"cli(['render', '--services', {str(services)!r}, '--out', {str(tmp_path / 'jobs')!r}, "
            "'--format', 'json'], "
            "standalone_mode=False); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('requests', 'consul', 'urllib3')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
    assert len(list((tmp_path / "jobs").iterdir())) == len(list(services.glob("*/service.json")))


def test_compiled_templates_are_kept_and_a_warm_one_still_names_its_line(services: Path, tmp_path: Path) -> None:
    """A new process loads the templates Jinja compiled before (the user's cache folder) instead of
    compiling them again; an error in a project template still names its file and line."""
    import subprocess
    import sys

    from nomadmesh.pack import BUILTIN_DIR

    task = tmp_path / "templates" / "_task.hcl.j2"
    task.parent.mkdir()
    task.write_text((BUILTIN_DIR / "_task.hcl.j2").read_text().replace("run.driver | q", "run.drvier | q"))
    line = next(i for i, text in enumerate(task.read_text().splitlines(), 1) if "drvier" in text)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "nomadmesh", "render", "--services", str(services),
               "--out", str(tmp_path / "jobs")]
    cold = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    kept = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache" / "nomadmesh").glob("jinja-*/__jinja2_*.cache")}
    warm = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert kept and {p: p.stat().st_mtime_ns for p in kept} == kept  # read back, not compiled and written again
    assert (cold.returncode, warm.returncode) == (2, 2)
    assert f"{task}:{line}: service invoice: " in cold.stderr
    assert warm.stderr == cold.stderr
