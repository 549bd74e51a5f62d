"""The plain-HCL reader (jobspec/hcl_simple.py) reads a text exactly as Lark's reading does (same
bodies, same expression trees down to every token's type and position), or gives up and leaves it
to Lark: it never accepts a text Lark refuses, and the jobs nomadmesh renders never leave it."""
from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from lark import Tree

from nomadmesh.definitions import load_spec
from nomadmesh.jobspec import JobspecError, hcl, hcl_simple
from nomadmesh.render import render_hcl
from support.paths import JOBSPEC_FIXTURES, SERVICES


def _dump(node: Any) -> Any:
    """Everything the evaluator and the messages can see of a Body, tokens' positions included."""
    if isinstance(node, Tree):
        return str(node.data), [_dump(c) for c in node.children]
    if isinstance(node, hcl.Body):
        return ({name: (a.line, a.column, _dump(a.expr)) for name, a in node.attrs.items()},
                [(b.type, b.labels, b.line, b.column, _dump(b.body)) for b in node.blocks])
    return (node.type, str(node), node.start_pos, node.line, node.column, node.end_line, node.end_column,
            node.end_pos)


def _lark(text: str) -> Any:
    try:
        return _dump(hcl.parse_with_lark(text))
    except JobspecError as e:
        return ("error", str(e), e.line, e.column)


def _same_or_given_up(text: str) -> bool:
    """True when the plain reader took the text (and then read it as Lark does)."""
    simple = hcl_simple.simple_body(text + "\n")
    if simple is None:
        return False
    assert _dump(simple) == _lark(text)
    return True


PLAIN = [
    "",
    "a = 1\n",
    'job "j" {}\n',
    'job "j" { a = 1 }',
    'variable "project_dir" {\n  type = string\n}\n',
    'job "j" {\n  # a comment\n\n  datacenters = ["dc1", "dc2"]\n  count  = 08\n  on = true\n  off = false\n'
    '  none = null\n  empty = []\n  meta {\n    a-b = "x\\"y $${not} %%{d} $ % ${var.project_dir}/s ${ a.b.c }"\n'
    '  }\n  group "g" label {\n    sidecar_service {}\n  }\n}\n',
    'a = [\n  "x", # one\n  "y",\n]\n',
    'a = [\n  "x"\n  ,\n  "y"\n]\n',
    'a = [ ]\nb = [\n]\nc = ["é 😀\\u00e9\\n\\\\"]\n',
    'a = "" # c\n\t\tb = "\t"\n',
    'job "" {\n}\n',
    'a = "x\\"y"\nb=""  # c\ng { c = "z"}\nd  =  "$ %"\n',
]

NOT_PLAIN = [  # all valid HCL (or errors) that only Lark reads
    "a = 1 + 2\n", "a = -1\n", "a = 1.5\n", "a = 1e3\n", "a = var.x\n", "a = f(1)\n", "a = x[0]\n",
    'a = { b = 1 }\n', "a = <<EOF\nx\nEOF\n", 'a = "${x + 1}"\n', 'a = "%{ if x }y%{ endif }"\n',
    'a = "${a[0]}"\n', 'a = "${a.0}"\n', 'a = "${a.true}"\n', "a = true ? 1 : 2\n", "a = 1\n  + 2\n",
    "a = 1 // c\n",
    'a = "x"\na = "y"\n', 'in = "x"\n', 'true = "x"\n', 'a = "x" + "y"\n', 'a = "x"y\n',
    "/* c */ a = 1\n", "a = 1\r\n", 'job "j"\n{\n}\n', "in {}\n", "a = in\n",
    'job "${x}" {}\n', 'job "a\\"b" {}\n', "a = 1\na = 2\n", "a = 1 b = 2\n", 'a = "x\ny"\n',
    "a = \n", "a = 1\n}\n", 'job "j" {\n', "a = [1,,]\n", 'a = "x" "y"\n', "a == 1\n", "a = 1abc\n",
]


@pytest.mark.parametrize("text", PLAIN)
def test_reads_plain_hcl_as_lark_does(text: str) -> None:
    assert _same_or_given_up(text), "the plain reader gave up"


@pytest.mark.parametrize("text", NOT_PLAIN)
def test_gives_up_on_the_rest(text: str) -> None:
    assert hcl_simple.simple_body(text + "\n") is None


@pytest.mark.parametrize("path", sorted(JOBSPEC_FIXTURES.glob("*.hcl")), ids=lambda p: p.name)
def test_fixture_jobspecs_read_the_same_either_way(path: Any) -> None:
    _same_or_given_up(path.read_text())


def test_every_rendered_sample_job_is_plain_and_read_as_lark_does() -> None:
    spec = load_spec(SERVICES)
    for service in spec.services:
        assert _same_or_given_up(render_hcl(service, spec.project, spec.root)), service.name


def test_its_terminals_are_python_hcl2s() -> None:
    terminals = {t.name: t.pattern.to_regexp() for t in hcl._parser().terminals}
    assert hcl_simple._NAME.pattern == terminals["NAME"]
    assert hcl_simple._STRING_CHARS.pattern == terminals["STRING_CHARS"]
    assert hcl_simple._EQ.pattern == terminals["EQ"]
    assert hcl_simple._ESCAPED["$"][1].pattern == terminals["ESCAPED_INTERPOLATION"]
    assert hcl_simple._ESCAPED["%"][1].pattern == terminals["ESCAPED_DIRECTIVE"]
    assert hcl_simple._KEYWORDS | set(hcl_simple._LITERALS) == {
        t.pattern.value for t in hcl._parser().terminals if re.fullmatch(r"[a-z_]+", str(t.pattern.value))}


# Texts built from the pieces the plain reader handles (mostly), and pieces next to them that it must leave to Lark.
_names = st.sampled_from(["a", "b_c", "d-e", "job", "x1", "A"] * 3 + ["in", "true", "1x", "_"])
_chars = st.text(alphabet='ab $%{}\\"\n\té', max_size=6)
_parts = st.sampled_from(["x y", " ", "${a}", "${ a.b }", "$${x}", "%%{y}", "$", "%", "\\\"", "é"] * 3 +
                         ["${a.0}", "%{ z }", "${"])
_strings = st.lists(st.one_of(_parts, _chars), max_size=4).map(lambda parts: '"' + "".join(parts) + '"')
_values = st.recursive(
    st.one_of(_strings, st.sampled_from(["1", "042", "true", "null", "string", "[]"] * 3 + ["-1", "1.5", "a.b"])),
    lambda inner: st.lists(inner, max_size=3).flatmap(
        lambda items: st.sampled_from([", ", ",\n", "\n, ", " # c\n"]).map(lambda sep: "[" + sep.join(items) + "]")),
    max_leaves=6,
)
_gaps = st.sampled_from([" ", " ", "", "\t", "  "])
_ends = st.sampled_from(["\n"] * 4 + ["\n\n  ", " # c\n", "", " }", "\n}\n"])


@st.composite
def _bodies(draw: st.DrawFn, depth: int = 0) -> str:
    items = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(_names)
        if depth < 2 and draw(st.booleans()):
            labels = " ".join(draw(st.lists(st.one_of(_strings, _names), max_size=2)))
            items.append(f"{name} {labels} {{{draw(_ends)}{draw(_bodies(depth + 1))}}}")
        else:
            items.append(f"{name}{draw(_gaps)}={draw(_gaps)}{draw(_values)}")
        items.append(draw(_ends))
    return "".join(items)


@settings(max_examples=200, deadline=None)
@given(_bodies())
def test_never_reads_a_text_otherwise_than_lark(text: str) -> None:
    _same_or_given_up(text)  # and where Lark refuses the text, the plain reader gave up


def _plain_string_values(chars: str) -> tuple[Any, Any] | None:
    """The value of `x = "<chars>"` read as a PlainString and through Lark's tree; None when not plain."""
    text = f'x = "{chars}"\n'
    simple = hcl_simple.simple_body(text + "\n")
    if simple is None or not isinstance(simple.attrs["x"].expr, hcl_simple.PlainString):
        return None
    evaluator = hcl.Evaluator(text, {}, lambda *_: None)
    return evaluator.value(simple.attrs["x"].expr), evaluator.value(hcl.parse_with_lark(text).attrs["x"].expr)


@pytest.mark.parametrize("chars", ["", "abc", "a\\nb", "tab\\t", "\\u00e9", "\\\\n", "$ x", "100%", "é", "\\q"])
def test_a_plain_string_evaluates_as_its_lark_tree_does(chars: str) -> None:
    """The evaluator reads a plain `"text"` from the text (PlainString) instead of walking its tree:
    the same value as walking Lark's tree for it, escapes included."""
    values = _plain_string_values(chars)
    assert values is not None, "read as a plain string"
    assert values[0] == values[1]


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from('ab \\"nrtu0${}%é\t'), max_size=12))
def test_any_plain_string_evaluates_as_its_lark_tree_does(chars: str) -> None:
    values = _plain_string_values(chars)
    if values is not None:  # otherwise read the general way, which other tests compare with Lark
        assert values[0] == values[1]
