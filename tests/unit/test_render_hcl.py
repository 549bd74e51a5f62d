"""The escaping function, identifier guard, layout pass and Jinja environment of nomadmesh.render."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from nomadmesh.errors import RenderError
from nomadmesh.jobspec import hcl as jobspec_hcl
from nomadmesh.render.hcl import hcl_fmt, hcl_ident, hcl_list, hcl_string
from nomadmesh.render.renderer import _environment


def _no_locals(name: str, line: int, column: int) -> object:
    raise AssertionError(f"local.{name} in a literal")


def parse_attr(literal: str) -> object:
    """The value of `x = <literal>` as the jobspec parser (the dev agent's, on python-hcl2) reads it."""
    text = f"x = {literal}\ny = 1\n"
    body = jobspec_hcl.parse(text)
    assert set(body.attrs) == {"x", "y"} and not body.blocks  # nothing leaked past the literal
    evaluator = jobspec_hcl.Evaluator(text, {}, _no_locals)
    assert evaluator.value(body.attrs["y"].expr) == 1
    return evaluator.value(body.attrs["x"].expr)


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain", '"plain"'),
        ('say "hi"', r'"say \"hi\""'),
        ("back\\slash", r'"back\\slash"'),
        ("a\nb\rc\td", r'"a\nb\rc\td"'),
        ("bell\x07 esc\x1b del\x7f", r'"bell\u0007 esc\u001b del\u007f"'),
        ("line\u2028sep", r'"line\u2028sep"'),
        ("${var.x}", '"$${var.x}"'),
        ("%{ if x }y%{ endif }", '"%%{ if x }y%%{ endif }"'),
        ("{{ env \"X\" }}", r'"{{ env \"X\" }}"'),  # consul-template syntax is not HCL's business
        ("é 😀", '"é 😀"'),
        # No closing brace after the introducer: python-hcl2 cannot lex `$${` then, so the brace
        # is written as an escape (HCL finds `${` in raw text only, so it stays literal).
        ("cost: ${", r'"cost: $\u007b"'),
        ("50%{", r'"50%\u007b"'),
        ("$${x}", '"$$${x}"'),
        ("${${}}", '"$${$${}}"'),  # python-hcl2 lexes this as one escaped token: both escapes count
    ],
)
def test_hcl_string_escapes(value: str, literal: str) -> None:
    assert hcl_string(value) == literal
    assert parse_attr(literal) == value


def test_hcl_string_refuses_non_strings_and_surrogates() -> None:
    with pytest.raises(RenderError, match="expected a string"):
        hcl_string(5)  # type: ignore[arg-type]
    with pytest.raises(RenderError, match="surrogate"):
        hcl_string("a\ud800b")


def test_hcl_list_maps_the_escaping_function() -> None:
    assert hcl_list(["a", 'b"', "${c}"]) == r'["a", "b\"", "$${c}"]'
    assert hcl_list([]) == "[]"


@pytest.mark.parametrize("name", ["PORT", "_x", "a-b", "nomadmesh_hash"])
def test_hcl_ident_accepts_identifiers(name: str) -> None:
    assert hcl_ident(name) == name


@pytest.mark.parametrize("name", ["", "1abc", "a b", 'a"', "a=b", "a\n}", "x.y", "é"])
def test_hcl_ident_refuses_everything_else(name: str) -> None:
    with pytest.raises(RenderError, match="cannot be an HCL identifier"):
        hcl_ident(name)


HOSTILE_PIECES = [
    '"', "\\", "${", "%{", "{{", "}}", "{", "}", "$", "%", "$${", "%%{", "\n", "\r", "\t",
    '"\n}\n', '\n}\nx = "', "# ", "//", "/*", "*/", "<<EOF\n", "\x00", "\x1b", "\x7f", "\x85",
    "\u2028", "é", "😀", "~}", "\\n", "\\u0041",
]
hostile_text = st.lists(
    st.one_of(st.sampled_from(HOSTILE_PIECES), st.text(max_size=4)), max_size=12
).map("".join)


@settings(max_examples=300, deadline=None)
@given(hostile_text)
def test_any_string_survives_a_parse(value: str) -> None:
    literal = hcl_string(value)
    assert "\n" not in literal and "\r" not in literal  # one line, always
    assert parse_attr(literal) == value


def test_hcl_fmt_indents_and_aligns_runs() -> None:
    text = 'job "a" {\na = 1\nlonger = "x = y"\n\nmeta {\nk = "v"\n}\nb {}\nzz = true\n}\n'
    assert hcl_fmt(text) == (
        'job "a" {\n'
        "  a      = 1\n"
        '  longer = "x = y"\n'
        "\n"
        "  meta {\n"
        '    k = "v"\n'
        "  }\n"
        "  b {}\n"
        "  zz = true\n"
        "}\n"
    )


def test_hcl_fmt_refuses_unbalanced_braces() -> None:
    with pytest.raises(RenderError, match="unbalanced"):
        hcl_fmt('job "a" {\n')


def test_environment_delimiters_leave_nomad_and_hcl_syntax_alone() -> None:
    env = _environment()
    out = env.from_string('a {{ b }} ${c} %{ d } [[ x | q ]][# gone #]').render(x='"')
    assert out == r'a {{ b }} ${c} %{ d } "\""'


def test_environment_offers_only_the_escaping_filters() -> None:
    env = _environment()
    assert set(env.filters) == {"q", "qlist", "ident", "num", "bool", "varpath", "body"}
    with pytest.raises(Exception, match="No filter named 'safe'"):
        env.from_string("[[ x | safe ]]")


def test_environment_is_strict_about_missing_names() -> None:
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        _environment().from_string("[[ missing | q ]]").render()


def test_var_path_interpolates_only_the_variable() -> None:
    from nomadmesh.render.hcl import VarPath, hcl_var_path

    literal = hcl_var_path(VarPath("project_dir", 'svc/${x} "q"'))
    assert literal == r'"${var.project_dir}/svc/$${x} \"q\""'
    assert hcl_var_path(VarPath("project_dir", "")) == '"${var.project_dir}"'
    with pytest.raises(RenderError):
        hcl_var_path("not a path")  # type: ignore[arg-type]
