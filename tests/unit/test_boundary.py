"""The hard boundary (issue 11): product code never imports nomadmesh.agent; only the `agent` command does.

`lint-imports` checks the contract in pyproject.toml over the whole import graph (indirect imports
and imports inside functions included); the second test keeps that contract from going stale when a
new top-level module appears.
"""
from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nomadmesh
from support.paths import REPO


def _contract() -> dict:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"]
                   if c.get("forbidden_modules") == ["nomadmesh.agent"]]
    return contract


def test_product_code_never_imports_the_agent() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run([str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_the_contract_covers_every_module_but_the_agent() -> None:
    top_level = {f"nomadmesh.{m.name}" for m in pkgutil.iter_modules(nomadmesh.__path__)} - {"nomadmesh.agent"}
    assert top_level <= set(_contract()["source_modules"])
    assert _contract()["ignore_imports"] == ["nomadmesh.cli.agent -> nomadmesh.agent.**"]
