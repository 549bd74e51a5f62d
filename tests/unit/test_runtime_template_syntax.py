"""The dev agent's `{{ }}` parser (runtime/template_syntax.py): Go text/template lexing for the
subset it renders, and refusal, naming the function, of everything else."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from nomadmesh.agent.runtime.template_syntax import (
    Block,
    Call,
    Field,
    TemplateSyntaxError,
    Text,
    Unsupported,
    keys,
    parse,
    services,
)


def test_text_and_the_supported_functions():
    nodes = parse('A={{ key "app/a" }}\nB={{keyOrDefault "app/b" "dflt"}} C={{ env "HOME" }}{{ "lit" }}')
    assert nodes == [Text("A="), Call("key", ("app/a",), 1), Text("\nB="),
                     Call("keyOrDefault", ("app/b", "dflt"), 2), Text(" C="), Call("env", ("HOME",), 2),
                     Call("", ("lit",), 2)]
    assert keys(nodes) == ["app/a", "app/b"]


def test_text_without_actions_is_one_node():
    assert parse("plain } { text") == [Text("plain } { text")]
    assert parse("") == []


def test_trim_markers_and_comments():
    assert parse("a  \n{{- env \"X\" -}}\n  b") == [Text("a"), Call("env", ("X",), 2), Text("b")]
    assert parse("a {{/* a comment with }} inside */}} b") == [Text("a "), Text(" b")]
    assert parse("a {{- /* c */ -}} b") == [Text("a"), Text("b")]


def test_go_string_escapes_and_raw_strings():
    assert parse(r'{{ key "a\tb\"c\\\x41\u00e9\101" }}') == [Call("key", ('a\tb"c\\Aé' + "A",), 1)]
    assert parse("{{ key `raw\\n}}` }}") == [Call("key", ("raw\\n}}",), 1)]


def test_right_delimiter_inside_a_string_does_not_end_the_action():
    assert parse('{{ keyOrDefault "k" "}}" }}x') == [Call("keyOrDefault", ("k", "}}"), 1), Text("x")]


def test_custom_delimiters_leave_braces_alone():
    nodes = parse('{{ not an action }} [[ key "k" ]]', left="[[", right="]]")
    assert nodes == [Text("{{ not an action }} "), Call("key", ("k",), 1)]


@pytest.mark.parametrize("text, message", [
    ('{{ key "a" | toUpper }}', 'function "toUpper" not supported by the dev agent'),
    ('{{ range key "app" }}{{ end }}', 'action "range" not supported by the dev agent'),
    ('{{ with key "app" }}{{ end }}', 'action "with" not supported by the dev agent'),
    ('{{ service "api" }}', 'function "service" not supported by the dev agent except as {{ range service'),
    ('{{ nomadVar "x" }}', 'function "nomadVar" not supported by the dev agent except as {{ range nomadVar "..." '
                           '}} or {{ with nomadVar "..." }}'),
    ('{{ range ls "app" }}{{ .Address }}{{ end }}', 'field ".Address" not supported by the dev agent (a key pair'),
    ('{{ with nomadVar "x" }}{{ .a.b }}{{ end }}', "field chains (.a.b) are not supported"),
    ('{{ with nomadVar "x@other" }}{{ end }}', "another namespace or region (@) is not supported"),
    ('{{ with nomadVar "x" }}{{ range ls "a" }}{{ end }}{{ end }}', "a range inside a with"),
    ('{{ range service "api" }}{{ .Meta }}{{ end }}', 'field ".Meta" not supported by the dev agent'),
    ('{{ range service "a" }}{{ range service "b" }}{{ end }}{{ end }}', "a range inside a range"),
    ('{{ range service "api@dc2" }}{{ end }}', "another datacenter (@dc) is not supported"),
    ('{{ range service "api" }}{{ .Address | x }}{{ end }}', 'function "x" not supported'),
    ('{{ if true }}x{{ end }}', 'action "if" not supported by the dev agent'),
    ("{{ .Address }}", "fields (.Address) are supported by the dev agent only inside {{ range service"),
    ('{{ key .Address }}', "fields and the dot (.Address) not supported by the dev agent"),
    ("{{ $x := 1 }}", "variables ($) not supported by the dev agent"),
    ('{{ "a" | printf }}', 'function "printf" not supported by the dev agent'),
    ("{{ 3 }}", "numbers not supported by the dev agent"),
    ('{{ key (env "X") }}', "parenthesized commands not supported by the dev agent"),
    ('{{ key "a@dc2" }}', "another datacenter (@dc) is not supported by the dev agent"),
    ('line1\n{{ secret "x" }}', 'line 2: function "secret" not supported'),
])
def test_unsupported_is_refused_naming_it(text, message):
    with pytest.raises(Unsupported, match=re.escape(message)):
        parse(text)


@pytest.mark.parametrize("text, message", [
    ('{{ key "a" ', "line 1: unclosed action"),
    ('x\n{{ key "a }}', "line 2: unterminated quoted string"),
    ("{{ key `a }}", "unterminated raw quoted string"),
    ("{{/* never closed }}", "unclosed comment"),
    ("{{/* c */ x }}", "comment ends before closing delimiter"),
    ("{{ }}", "missing value for command"),
    ('{{ key "a" "b" }}', "wrong number of args for key: want 1 got 2"),
    ('{{ keyOrDefault "a" }}', "wrong number of args for keyOrDefault: want 2 got 1"),
    (r'{{ key "\q" }}', "unknown escape sequence"),
    (r'{{ key "\x4" }}', "invalid escape"),
    ('{{ "a" "b" }}', "can't give argument to non-function"),
    ('{{ range service "api" }}x', "line 1: unexpected EOF"),
    ("x{{ end }}", "unexpected {{end}}"),
])
def test_malformed_templates_are_syntax_errors(text, message):
    with pytest.raises(TemplateSyntaxError, match=message):
        parse(text)


def test_range_service_with_fields():
    nodes = parse('{{ range service "api" }}\n{{ .Address }}:{{ .Port }} {{ env "X" }}{{ end }}')
    assert nodes == [Block("range", "service", "api", (Text("\n"), Field("Address", 2), Text(":"), Field("Port", 2),
                                                        Text(" "), Call("env", ("X",), 2)), 1)]
    assert services(nodes) == ["api"]
    assert keys(parse('{{ range service "a" }}{{ key "k" }}{{ end }}')) == ["k"]


def test_nested_delimiters_are_refused_not_misparsed():
    with pytest.raises(Unsupported, match=r'"\{" not supported'):
        parse('{{ {{ key "a" }} }}')


def test_huge_inputs_are_one_linear_pass():
    big = "x" * 1_000_000
    assert parse(big + '{{ key "k" }}' + big) == [Text(big), Call("key", ("k",), 1), Text(big)]
    with pytest.raises(TemplateSyntaxError, match="unclosed action"):
        parse("{{ " + " " * 1_000_000)
    with pytest.raises(TemplateSyntaxError, match="unterminated quoted string"):
        parse('{{ key "' + "a" * 1_000_000)
    many = '{{ env "A" }}' * 20_000
    assert len(parse(many)) == 20_000


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*'{}"`\\/*- \nabkeyOrDfault|$.()@0', "range ", "service ", "end", ".Port"]),
                max_size=40).map("".join))
def test_hostile_text_parses_or_raises_a_template_error(text):
    try:
        nodes = parse(text)
    except (TemplateSyntaxError, Unsupported):
        return
    for node in nodes:
        assert isinstance(node, (Text, Call))
        if isinstance(node, Call):
            assert node.func in ("", "env", "key", "keyOrDefault")
        if isinstance(node, Block):
            assert all(isinstance(n, (Text, Call, Field)) for n in node.body)


def test_connect_ls_and_nomad_var_blocks():
    nodes = parse('{{ range connect "api" }}{{ .Port }}{{ end }}{{ range ls "app" }}{{ .Key }}{{ end }}'
                  '{{ with nomadVar "nomad/jobs/x" }}{{ .password }}{{ end }}')
    assert [(n.action, n.func, n.arg) for n in nodes if isinstance(n, Block)] == [
        ("range", "connect", "api"), ("range", "ls", "app"), ("with", "nomadVar", "nomad/jobs/x")]
