"""The `{{ }}` actions of a Nomad `template` block, parsed for the subset the dev agent renders. Pure.

Nomad renders templates with consul-template, i.e. Go's text/template plus consul-template's
functions. The dev agent renders an honest subset and refuses everything else when the job is
registered, instead of accepting a template it would render wrong:

    text outside actions               copied as is
    {{/* comment */}}                  dropped
    {{- ... -}}                        trims the whitespace before / after the action (Go's trim markers)
    {{ "literal" }}  {{ `raw` }}       prints the string
    {{ env "NAME" }}                   the task's environment variable ("" when unset)
    {{ key "path" }}                   the Consul KV value; rendering waits until the key exists
    {{ keyOrDefault "path" "dflt" }}   the KV value, or the default while the key is missing
    {{ range service "name" }}         once per passing instance of the service ("tag.name": with
      {{ .Address }}:{{ .Port }}       that tag), sorted by node then ID; fields: Node, NodeID,
    {{ end }}                          NodeAddress, NodeDatacenter, Address, ID, Name, Port, Status, Tags
    {{ range connect "name" }}         the same over the service's Connect-capable instances (its sidecars)
    {{ range ls "prefix" }}            once per top-level KV pair under the prefix; fields: Path, Key,
      {{ .Key }}={{ .Value }}          Value, CreateIndex, ModifyIndex, LockIndex, Flags, Session
    {{ with nomadVar "path" }}         the Nomad variable's items by name ({{ .password }}), in the
      {{ .password }}{{ end }}         task's namespace; rendering waits until the variable exists
    {{ range nomadVar "path" }}        once per item, sorted by name; fields: Key, Value

Arguments are string literals (Go's "..." with its escapes, or `raw`). Anything else inside an
action (another function, a pipeline, if or another range or with, variables, fields outside a
block, numbers) raises Unsupported naming it. Lexing follows text/template's: a right
delimiter inside a quoted string does not end the action, the delimiters are configurable
(`left_delimiter`/`right_delimiter`), and the work is linear in the input (no regex backtracking),
so a huge or hostile template costs one pass.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_LEFT = "{{"
DEFAULT_RIGHT = "}}"
# consul-template's functions the dev agent renders, with the number of arguments each takes.
FUNCTIONS: dict[str, int] = {"env": 1, "key": 1, "keyOrDefault": 2}
# The fields of consul-template's HealthService the dev agent fills in.
SERVICE_FIELDS = ("Node", "NodeID", "NodeAddress", "NodeDatacenter", "Address", "ID", "Name", "Port", "Status",
                  "Tags")
KEYPAIR_FIELDS = ("Path", "Key", "Value", "CreateIndex", "ModifyIndex", "LockIndex", "Flags", "Session")
# (action, function) -> the fields of what its body is run with; None: any name (a variable's items)
BLOCKS: dict[tuple[str, str], tuple[str, ...] | None] = {
    ("range", "service"): SERVICE_FIELDS, ("range", "connect"): SERVICE_FIELDS, ("range", "ls"): KEYPAIR_FIELDS,
    ("range", "nomadVar"): ("Key", "Value"), ("with", "nomadVar"): None}
BLOCK_FUNCS = frozenset(f for _, f in BLOCKS)
# text/template's keywords: each starts an action the dev agent does not run.
KEYWORDS = frozenset({"if", "else", "end", "range", "with", "define", "template", "block", "break",
                      "continue", "nil", "true", "false"})
_SPACE = " \t\r\n"
# Character-class runs only: each match is linear, with nothing to backtrack over.
_SPACES = re.compile(r"[ \t\r\n]+")
_NAME = re.compile(r"\w+")
_FIELD = re.compile(r"[\w.]*")
_PLAIN = re.compile(r'[^"\\\n]*')  # the plain run of a quoted string, up to a quote, escape or newline
_SUPPORTED = ", ".join(sorted(FUNCTIONS)) + ", range service/connect/ls/nomadVar, with nomadVar"


class TemplateSyntaxError(ValueError):
    """The template is not valid Go template text (unterminated action, bad string...)."""


class Unsupported(ValueError):
    """Valid Go template text the dev agent cannot render; the message names what and says so."""


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Call:
    """One action: `func` applied to string `args`; func "" prints its one argument."""

    func: str
    args: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class Field:
    """`{{ .Address }}` inside a block: a field of what the body runs with (an instance, a pair...)."""

    name: str
    line: int


@dataclass(frozen=True)
class Block:
    """`{{ range service "name" }}body{{ end }}` and the like (BLOCKS): `action` ("range" or "with")
    of `func` applied to `arg`."""

    action: str
    func: str
    arg: str
    body: tuple[Text | Call | Field, ...]
    line: int


Node = Text | Call | Field | Block


def parse(text: str, left: str = "", right: str = "") -> list[Node]:
    """The template as text and calls, or TemplateSyntaxError / Unsupported (messages say the line)."""
    left, right = left or DEFAULT_LEFT, right or DEFAULT_RIGHT
    top: list[Node] = []
    nodes: list[Node] = top
    open_block: Call | None = None  # the `range`/`with` being read
    pos, trim_next = 0, False
    line, counted = 1, 0  # the line number at text[counted], advanced as the parse goes (linear)
    while True:
        start = text.find(left, pos)
        chunk = text[pos:] if start < 0 else text[pos:start]
        after = start + len(left)
        trim_before = start >= 0 and text.startswith("-", after) and text[after + 1:after + 2] in tuple(_SPACE)
        if trim_next:
            chunk = chunk.lstrip(_SPACE)
        if trim_before:
            chunk = chunk.rstrip(_SPACE)
        if chunk:
            nodes.append(Text(chunk))
        if start < 0:
            if open_block is not None:
                raise TemplateSyntaxError(f"line {open_block.line}: unexpected EOF ({open_block.func} without end)")
            return top
        line += text.count("\n", counted, start)
        counted = start
        call, pos, trim_next = _action(text, after + (2 if trim_before else 0), right, line)
        if call is None:
            continue
        if call.func in ("range", "with"):
            if open_block is not None:
                raise Unsupported(f"line {line}: a {call.func} inside a {open_block.func} is not supported by the "
                                  "dev agent")
            open_block, nodes = call, []
        elif call.func == "end":
            if open_block is None:
                raise TemplateSyntaxError(f"line {line}: unexpected {{{{end}}}}")
            body = tuple(n for n in nodes if isinstance(n, (Text, Call, Field)))
            top.append(Block(open_block.func, open_block.args[0], open_block.args[1], body, open_block.line))
            open_block, nodes = None, top
        elif call.func == ".":
            if open_block is None:
                raise Unsupported(f"line {line}: fields (.{call.args[0]}) are supported by the dev agent only "
                                  'inside {{ range service "name" }} and the other blocks')
            _check_field(open_block, call.args[0], line)
            nodes.append(Field(call.args[0], line))
        else:
            nodes.append(call)


def _check_field(block: Call, field: str, line: int) -> None:
    """A field the body of `block` (a range/with Call) can read, or Unsupported."""
    action, func = block.func, block.args[0]
    fields = BLOCKS[(action, func)]
    if "." in field or not field:
        raise Unsupported(f"line {line}: field chains (.{field}) are not supported by the dev agent")
    if fields is not None and field not in fields:
        what = {"service": "a service instance", "connect": "a service instance", "ls": "a key pair",
                "nomadVar": "a variable item"}[func]
        raise Unsupported(f'line {line}: field ".{field}" not supported by the dev agent '
                          f"({what} has {', '.join(fields)})")


def _action(text: str, pos: int, right: str, line: int) -> tuple[Call | None, int, bool]:
    """Lex one action from `pos` (just past the left delimiter and its trim marker); returns the
    call (None for a comment), the position after the right delimiter, and its right trim marker."""
    if text.startswith("/*", pos):
        end = text.find("*/", pos + 2)
        if end < 0:
            raise TemplateSyntaxError(f"line {line}: unclosed comment")
        pos = end + 2
        closed = _closing(text, pos, right)
        if closed is None:
            raise TemplateSyntaxError(f"line {line}: comment ends before closing delimiter")
        return None, closed[0], closed[1]
    tokens: list[tuple[str, str]] = []  # (kind, value): ident, string, other
    while True:
        closed = _closing(text, pos, right)
        if closed is not None:
            return _call(tokens, line), closed[0], closed[1]
        if pos >= len(text):
            raise TemplateSyntaxError(f"line {line}: unclosed action")
        c = text[pos]
        if c in _SPACE:
            end = _SPACES.match(text, pos).end()  # type: ignore[union-attr]  # c is a space: it matches
            # " -}}" ends the action with a trim marker even after a run of spaces.
            pos = end - 1 if text.startswith("-" + right, end) else end
        elif c == '"':
            value, pos = _quoted(text, pos, line)
            tokens.append(("string", value))
        elif c == "`":
            end = text.find("`", pos + 1)
            if end < 0:
                raise TemplateSyntaxError(f"line {line}: unterminated raw quoted string")
            tokens.append(("string", text[pos + 1:end]))
            pos = end + 1
        elif c.isalpha() or c == "_":
            end = _NAME.match(text, pos).end()  # type: ignore[union-attr]  # c starts a name: it matches
            tokens.append(("ident", text[pos:end]))
            pos = end
        else:
            pos += 1
            if c in ".$":  # `.Field` and `$var` name data, not functions: one token with their name
                end = _FIELD.match(text, pos).end()  # type: ignore[union-attr]  # matches the empty string
                tokens.append(("field" if c == "." else "other", text[pos:end] if c == "." else c))
                pos = end
            else:
                tokens.append(("other", c))


def _closing(text: str, pos: int, right: str) -> tuple[int, bool] | None:
    """(position after the right delimiter, trim marker) when the action ends at `pos`, else None."""
    if text.startswith(" -" + right, pos):
        return pos + 2 + len(right), True
    if text.startswith(right, pos):
        return pos + len(right), False
    return None


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"'}
_HEX_LEN = {"x": 2, "u": 4, "U": 8}


def _quoted(text: str, pos: int, line: int) -> tuple[str, int]:
    """A Go interpreted string literal starting at text[pos] == '"': (its value, the position after it)."""
    out: list[str] = []
    i = pos + 1
    while True:
        # Copy runs of plain characters in one slice: linear even for a megabyte-long string.
        j = _PLAIN.match(text, i).end()  # type: ignore[union-attr]  # matches the empty string
        out.append(text[i:j])
        if j >= len(text) or text[j] == "\n":
            raise TemplateSyntaxError(f"line {line}: unterminated quoted string")
        if text[j] == '"':
            return "".join(out), j + 1
        esc = text[j + 1:j + 2]
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i = j + 2
        elif esc in _HEX_LEN or (esc and esc in "01234567"):
            digits = _HEX_LEN.get(esc, 3)
            start = j + 2 if esc in _HEX_LEN else j + 1
            raw = text[start:start + digits]
            try:
                code = int(raw, 16 if esc in _HEX_LEN else 8)
            except ValueError:
                code = -1
            if len(raw) != digits or code < 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF \
                    or (esc not in "uU" and code > 255):
                raise TemplateSyntaxError(f"line {line}: invalid escape in quoted string")
            # \x and octal escapes are bytes in Go; the dev agent's text is Unicode, so they stand
            # for the code point of the same value (identical for ASCII, which is what keys use).
            out.append(chr(code))
            i = start + digits
        else:
            raise TemplateSyntaxError(f"line {line}: unknown escape sequence in quoted string")


def _call(tokens: list[tuple[str, str]], line: int) -> Call:
    """The one call an action's tokens make, or Unsupported / TemplateSyntaxError."""
    if not tokens:
        raise TemplateSyntaxError(f"line {line}: missing value for command")
    kinds = [k for k, _ in tokens]
    if kinds == ["ident", "ident", "string"] and (tokens[0][1], tokens[1][1]) in BLOCKS:
        action, func, arg = tokens[0][1], tokens[1][1], tokens[2][1]
        if "@" in arg:
            where = "another namespace or region (@)" if func == "nomadVar" else "another datacenter (@dc)"
            raise Unsupported(f'line {line}: {func} "{arg}": {where} is not supported by the dev agent')
        return Call(action, (func, arg), line)
    if tokens == [("ident", "end")]:
        return Call("end", (), line)
    if kinds == ["field"]:
        return Call(".", (tokens[0][1],), line)
    # Name the first function or keyword the agent does not know: that is what a user must change.
    for kind, value in tokens:
        if kind == "ident" and value in KEYWORDS:
            raise Unsupported(f'line {line}: action "{value}" not supported by the dev agent '
                              f"(it renders {_SUPPORTED}; arguments are string literals)")
        if kind == "ident" and value not in FUNCTIONS:
            forms = [f'{{{{ {a} {f} "..." }}}}' for a, f in BLOCKS if f == value]
            hint = f" except as {' or '.join(forms)}" if forms else ""
            raise Unsupported(f'line {line}: function "{value}" not supported by the dev agent{hint} '
                              f"(supported: {_SUPPORTED})")
    for kind, value in tokens:
        if kind == "field":
            raise Unsupported(f"line {line}: fields and the dot (.{value}) not supported by the dev agent "
                              'except alone inside {{ range service "name" }} and the other blocks')
        if kind == "other":
            what = {"|": "pipelines (|)", "$": "variables ($)", "(": "parenthesized commands"}.get(value)
            what = what or ("numbers" if value.isdigit() or value in "+-" else f'"{value}"')
            raise Unsupported(f"line {line}: {what} not supported by the dev agent in an action "
                              f"(supported: {_SUPPORTED}; arguments are string literals)")
    head_kind, head = tokens[0]
    args = tuple(v for _, v in tokens[1:])
    if head_kind == "string":
        if args:
            raise TemplateSyntaxError(f"line {line}: can't give argument to non-function {tokens[0][1]!r}")
        return Call("", (head,), line)
    if any(kind != "string" for kind, _ in tokens[1:]):
        fn = next(v for k, v in tokens[1:] if k != "string")
        raise Unsupported(f'line {line}: nested call of "{fn}" not supported by the dev agent '
                          "(arguments must be string literals)")
    if len(args) != FUNCTIONS[head]:
        raise TemplateSyntaxError(f"line {line}: wrong number of args for {head}: want {FUNCTIONS[head]} "
                                  f"got {len(args)}")
    if head in ("key", "keyOrDefault") and "@" in args[0]:
        raise Unsupported(f'line {line}: {head} "{args[0]}": a key in another datacenter (@dc) is not '
                          "supported by the dev agent")
    return Call(head, args, line)


def _flat(nodes: list[Node]) -> list[Node]:
    return [m for n in nodes for m in ((n, *n.body) if isinstance(n, Block) else (n,))]


def keys(nodes: list[Node]) -> list[str]:
    """The KV keys a parsed template reads, in order, without repeats."""
    return list(dict.fromkeys(n.args[0] for n in _flat(nodes)
                              if isinstance(n, Call) and n.func in ("key", "keyOrDefault")))


def block_args(nodes: list[Node], func: str) -> list[str]:
    """What a parsed template's blocks of `func` read: services (`tag.name` as written) for
    service/connect, prefixes for ls, paths for nomadVar."""
    return list(dict.fromkeys(n.arg for n in nodes if isinstance(n, Block) and n.func == func))


def services(nodes: list[Node]) -> list[str]:
    """The services a parsed template ranges over (`tag.name` as written)."""
    return block_args(nodes, "service")
