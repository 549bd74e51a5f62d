"""`pip install nomadmesh` without the `[agent]` extra: the CLI works, `agent --dev` says what to install.

The extra's modules are hidden in a child interpreter (None in sys.modules makes their import fail
as if the package were not installed); the real throwaway-venv check is in the README's install notes.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

HIDE_AND_RUN = ("import sys\n"
                "for name in sys.argv[1].split(','):\n"
                "    sys.modules[name] = None\n"
                "from nomadmesh.cli.main import cli\n"
                "cli(sys.argv[2:], prog_name='nomadmesh')\n")


def run_without(modules: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", HIDE_AND_RUN, modules, *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("missing", ["grpc", "cryptography", "xds"])
def test_agent_without_the_extra_is_a_one_line_error(missing: str) -> None:
    out = run_without(missing, "agent", "--dev")
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"Error: the dev agent needs the agent extra (no module {missing!r}): pip install 'nomadmesh[agent]'"]


def test_the_rest_of_the_cli_does_not_need_the_extra() -> None:
    out = run_without("grpc,cryptography,envoy,xds", "--help")
    assert out.returncode == 0, out.stderr
    assert "agent" in out.stdout and "deploy" in out.stdout
    out = run_without("grpc,cryptography,envoy,xds", "agent", "--help")
    assert out.returncode == 0, out.stderr
    assert "--dev" in out.stdout


IMPORT_ALL_PRODUCT = ("import sys, pkgutil, importlib\n"
                      "for name in sys.argv[1].split(','):\n"
                      "    sys.modules[name] = None\n"
                      "import nomadmesh\n"
                      "for m in pkgutil.walk_packages(nomadmesh.__path__, 'nomadmesh.'):\n"
                      "    if not m.name.startswith('nomadmesh.agent'):\n"
                      "        importlib.import_module(m.name)\n"
                      "print('imported')\n")


def test_every_product_module_imports_without_the_extra() -> None:
    hidden = "grpc,cryptography,envoy,xds,udpa,validate,google.protobuf"
    out = subprocess.run([sys.executable, "-c", IMPORT_ALL_PRODUCT, hidden], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "imported"
