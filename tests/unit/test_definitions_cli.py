"""`nomadmesh validate` through click: exit codes, exact output, no traceback."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from nomadmesh.cli.main import cli
from support.paths import SERVICES
from support.spec_builders import UPSTREAMS, definition, write_services

SAMPLES = SERVICES


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    return write_services(tmp_path, {
        "a": definition("a", 5000, {"b": 6001, "c": 6001}),
        "b": '{"service": {"name": "b",}}',
        "c": {**definition("c", 70000), "extra": 1},
    })  # fmt: skip


def test_valid_folder(tmp_path: Path) -> None:
    shutil.copytree(SAMPLES, tmp_path / "services")
    result = run("validate", "--services", str(tmp_path / "services"))
    assert (result.exit_code, result.stdout, result.stderr) == (
        0, "ok: 4 services (ingress, invoice, order, tax)\n", "")


def test_default_services_folder_is_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(SAMPLES, tmp_path / "services")
    monkeypatch.chdir(tmp_path)
    result = run("validate")
    assert (result.exit_code, result.stdout) == (0, "ok: 4 services (ingress, invoice, order, tax)\n")


def test_every_problem_one_per_line_on_stderr_exit_2(broken: Path) -> None:
    result = run("validate", "--services", str(broken))
    a, b, c = (broken / n / "service.json" for n in "abc")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{a}: {UPSTREAMS}[1].local_bind_port: 6001 is already used by upstreams[0] (b)",
        f"{b}: invalid JSON at line 1, column 26: Expecting property name enclosed in double quotes",
        f"{c}: extra: unknown key; expected one of ingress, nomad, service, traffic",
        f"{c}: service.port: must be an integer from 1 to 65535, got 70000",
        "4 problem(s) found",
    ]
    assert "Traceback" not in result.output


def test_json_output(broken: Path, tmp_path: Path) -> None:
    result = run("validate", "--services", str(broken), "--json")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert doc["errors"][0] == {
        "file": str(broken / "a" / "service.json"),
        "field": f"{UPSTREAMS}[1].local_bind_port",
        "message": "6001 is already used by upstreams[0] (b)",
    }
    assert len(doc["errors"]) == 4
    good = write_services(tmp_path / "good", {"x": definition("x", 1)})
    ok = run("validate", "--services", str(good), "--json")
    assert (ok.exit_code, json.loads(ok.stdout)) == (0, {"ok": True, "services": ["x"], "warnings": []})


def test_warnings_printed_on_success(tmp_path: Path) -> None:
    services = write_services(tmp_path, {"a": definition("a", 5000, {"b": 6001}),
                                         "b": definition("b", 5001, {"a": 6002})})
    result = run("validate", "--services", str(services))
    assert result.exit_code == 0
    assert result.stdout == "ok: 2 services (a, b)\n"
    assert result.stderr == (
        f"warning: {services / 'a' / 'service.json'}: {UPSTREAMS}: "
        "upstream cycle a → b → a (legal in a mesh, but a request can go round it)\n"
    )


def test_allow_external_and_project_options(tmp_path: Path) -> None:
    services = write_services(tmp_path, {"a": definition("a", 5000, {"billing": 6001, "tax": 6002})})
    assert run("validate", "--services", str(services)).exit_code == 2
    assert run("validate", "--services", str(services), "--allow-external", "billing").exit_code == 2
    result = run("validate", "--services", str(services), "--allow-external", "billing", "--allow-external", "tax")
    assert (result.exit_code, result.stdout) == (0, "ok: 1 services (a)\n")
    project = tmp_path / "elsewhere.json"
    project.write_text('{"external_services": ["billing", "tax"]}')
    assert run("validate", "--services", str(services), "--project", str(project)).exit_code == 0
    missing = run("validate", "--services", str(services), "--project", str(tmp_path / "none.json"))
    assert missing.exit_code == 2
    assert missing.stderr.startswith(f"{tmp_path / 'none.json'}: cannot be read")


def test_empty_folder(tmp_path: Path) -> None:
    result = run("validate", "--services", str(tmp_path))
    assert (result.exit_code, result.stderr) == (
        2, f"{tmp_path}: has no service definitions (<name>/service.json)\n1 problem(s) found\n"
    )  # fmt: skip


def test_help_has_an_example() -> None:
    for command in ("validate", "graph"):
        result = run(command, "--help")
        assert result.exit_code == 0
        assert "Example:" in result.stdout
        assert "--services" in result.stdout
