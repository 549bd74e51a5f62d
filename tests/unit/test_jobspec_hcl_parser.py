"""The jobspec's own Lark parser (python-hcl2's grammar, no node positions, tables cached in the
user's cache folder) reads every jobspec exactly as python-hcl2's own parser does: same Job, same
errors at the same line and column."""
from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import hcl2
import pytest

from nomadmesh.jobspec import JobspecError, hcl, parse_hcl
from support.paths import JOBSPEC_FIXTURES

TRICKY = [
    'variable "ports" {\n  type    = list(number)\n  default = [8080, 9102]\n}\n'
    'variable "dir" {\n  type = string\n  default = "/srv"\n}\n'
    'locals {\n  name = "w-${var.dir}"\n  n    = 1 +\n    2\n}\n'
    'job "j" {\n'
    '  # a comment\n'
    '  meta {\n'
    '    a = "${var.dir}/x ${NOMAD_PORT_http} $${lit} %%{x} \\" ${env["HOME"]} ${node.unique.name}"\n'
    '    b = local.name  // another\n'
    '    c = "${var.ports[1]}-${upper(var.dir)}-${local.n}"\n'
    '    d = <<-EOF\n      ${var.dir} ${NOMAD_ALLOC_ID}\n        $${x}\n      EOF\n'
    '  }\n'
    '  group "g" {\n    count = var.ports[0] > 8000 ? 2 : 1\n  }\n'
    '}\n',
    'job "j" {\n  type = \n}\n',
    'job "j" {\n  env = "unterminated\n}\n',
    'job "j" {\n  type = NOMAD_X\n}\n',
    'job "j" {\n  type = var.nope\n}\n',
    'job "j" {\n  meta {\n    a = "${1 + }"\n  }\n}\n',
    'job "j" {\n  type = "%{ if true }x%{ endif }"\n}\n',
    'job "j" {\n  type = lookup(a, b)\n}\n',
]


def _outcome(text: str) -> Any:
    try:
        return parse_hcl(text)
    except JobspecError as e:
        return ("error", str(e), e.line, e.column)


@pytest.mark.parametrize("text", [p.read_text() for p in sorted(JOBSPEC_FIXTURES.glob("*.hcl"))] + TRICKY)
def test_reads_every_jobspec_as_python_hcl2s_own_parser(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ours = _outcome(text)
    monkeypatch.setattr(hcl, "_parse_tree", hcl2.parses_to_tree)  # python-hcl2's parser, positions on
    monkeypatch.setattr(hcl, "simple_body", lambda text: None)  # and nothing but it
    assert ours == _outcome(text)


def test_the_tricky_jobspec_means_what_hcl_says() -> None:
    meta = parse_hcl(TRICKY[0])["Meta"]
    assert meta["a"] == '/srv/x ${NOMAD_PORT_http} ${lit} %{x} " ${env["HOME"]} ${node.unique.name}'
    assert meta == {**meta, "b": "w-/srv", "c": "9102-/SRV-3", "d": "/srv ${NOMAD_ALLOC_ID}\n  ${x}\n"}


def test_tables_are_cached_in_a_private_folder_under_xdg_cache_home(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    where = Path(str(hcl._table_cache()))
    assert where.parent == tmp_path / "nomadmesh"
    assert stat.S_IMODE(where.parent.stat().st_mode) == 0o700
    assert "python-hcl2" not in where.name and where.name.startswith("hcl2-")


def test_no_table_cache_when_its_folder_cannot_be_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(a_file))
    assert hcl._table_cache() is False


@pytest.mark.parametrize("expr, expected", [
    ("true\n    && false", False),
    ("1\n    + 2 # a comment\n    * 3", 7),
    ("2 // why\n    == 2", True),
])
def test_a_binary_operator_may_start_the_next_line(expr: str, expected: Any) -> None:
    # python-hcl2's post-lexer joins the newline (and any comment) to the operator's token
    value = parse_hcl(f'locals {{\n  x = {expr}\n}}\njob "j" {{\n  meta {{\n    a = "${{local.x}}"\n  }}\n}}\n')
    assert value["Meta"]["a"] == str(expected).lower()


def test_the_lark_cython_fast_path_is_in_use() -> None:
    assert hcl._fast_parser() is not None
    assert type(hcl._first_token(hcl._parse_tree("a = 1"))).__module__.startswith("lark_cython")
