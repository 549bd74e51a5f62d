"""The library facade: `import nomadmesh` gives what the CLI does (load, render, plan, apply, status,
destroy) and exactly the names in `__all__`. Offline parts here; plan/apply/status/destroy against a
real dev agent are in tests/agent/test_library_agent.py."""
from __future__ import annotations

import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

import nomadmesh
from nomadmesh.cli.main import cli
from support.paths import SERVICES

FACADE = ("load", "render", "plan", "apply", "status", "destroy")


def test_all_is_exactly_the_public_surface() -> None:
    """Like httpx's test: every public non-module attribute is in `__all__`, and nothing else is.
    Names are imported on first use (PEP 562), so each is resolved before the module is looked at."""
    for name in nomadmesh.__all__:
        getattr(nomadmesh, name)  # every exported name resolves
    public = sorted(name for name, value in vars(nomadmesh).items()
                    if not name.startswith("_") and not isinstance(value, ModuleType))
    assert nomadmesh.__all__ == public
    assert set(nomadmesh.__all__) <= set(dir(nomadmesh))


@pytest.mark.parametrize("name", FACADE)
def test_the_facade_functions_are_exported_typed_and_documented(name: str) -> None:
    assert name in nomadmesh.__all__
    fn = getattr(nomadmesh, name)
    assert callable(fn) and not isinstance(fn, ModuleType)
    assert inspect.getdoc(fn)
    signature = inspect.signature(fn)
    assert signature.return_annotation is not inspect.Signature.empty
    assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values())


def test_load_and_render_give_the_files_the_cli_writes(tmp_path: Path) -> None:
    services = tmp_path / "services"
    shutil.copytree(SERVICES, services)
    spec = nomadmesh.load(services)
    files = nomadmesh.render(spec)
    assert set(files) == {f"{s.name}.nomad.hcl" for s in spec.services}

    out = tmp_path / "jobs"
    result = CliRunner().invoke(cli, ["render", "--services", str(services), "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = {p.name: p.read_text() for p in out.glob("*.nomad.hcl")}
    assert written == files


def test_load_refuses_a_bad_definition_with_a_spec_error(tmp_path: Path) -> None:
    folder = tmp_path / "services" / "broken"
    folder.mkdir(parents=True)
    (folder / "service.json").write_text(json.dumps({"service": {"name": "broken", "port": "eighty"}}))
    with pytest.raises(nomadmesh.SpecError, match="port"):
        nomadmesh.load(tmp_path / "services")


def test_importing_the_facade_loads_no_http_client() -> None:
    """`import nomadmesh` (and so every CLI command) does not pay for deploy's HTTP clients until a
    name that needs them is used."""
    code = ("import sys, nomadmesh; heavy = sorted({'requests', 'consul', 'nomadmesh.deploy'} & set(sys.modules)); "
            "print(heavy); nomadmesh.plan; print('requests' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "True"]
