"""The dev agent's structure (issue 11): no import cycle anywhere in the package, and the agent's
layers (http -> nomad -> connect -> consul -> runtime -> context/state) import downwards only.

`lint-imports` (run by tests/test_boundary.py) checks both contracts in pyproject.toml over the whole
import graph; the tests here keep the contracts from going stale: every module of the agent sits
in a layer, and the acyclicity contract covers the whole package.
"""
from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import nomadmesh.agent
from support.paths import REPO


def _contract(kind: str) -> dict[str, Any]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == kind]
    return contract


def test_every_agent_module_sits_in_a_layer() -> None:
    layered = {name.strip() for layer in _contract("layers")["layers"] for name in layer.split("|")}
    modules = {m.name for m in pkgutil.iter_modules(nomadmesh.agent.__path__)}
    assert modules - layered == set(), "add the new module to the agent's layers in pyproject.toml"


def test_no_cycle_contract_covers_the_whole_package() -> None:
    contract = _contract("acyclic_siblings")
    assert contract["ancestors"] == ["nomadmesh"]
    assert not contract.get("ignore_imports") and not contract.get("skip_descendants")


def test_the_agent_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    ids = [_contract("layers")["id"], _contract("acyclic_siblings")["id"]]
    args = [str(lint_imports), "--no-cache"] + [a for i in ids for a in ("--contract", i)]
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "2 kept, 0 broken" in out.stdout
