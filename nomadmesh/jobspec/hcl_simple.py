"""`simple_body(text)`: the plain HCL most jobspecs are written in, read without Lark.

Lark spends ~2 ms of CPU on a rendered job (its LALR loop and a Python callback for each of its
~1,000 reductions), two thirds of a `render --format json`. Rendered jobs, and most jobs people
write, use a small part of HCL: blocks with identifier or quoted labels, and attributes whose
values are quoted strings (with `$${...}` escapes and `${name.attr...}` references), whole
numbers, `true`/`false`/`null`, bare identifiers and lists of those, with `#` comments. This module
reads that part with a few regular expressions, in one pass, into the `Body` that `hcl.parse`
makes of Lark's tree, each attribute's value being exactly the expression tree (node names, tokens,
token types and positions) python-hcl2's grammar gives under Lark, so the evaluator, the decoder
and every message downstream are the same. It skips what Lark builds and `hcl.parse` then drops
(newline and comment tokens, block and label nodes): a job reads in about a third of Lark's time.

It is not a second parser of HCL: the moment it meets anything else (an operator, a function,
a heredoc, an object, a float, a `/* */` comment, a carriage return, a syntax error...) it gives up
(None) and `hcl.parse` runs Lark on the whole text, which alone decides what is an error
and says where. tests/unit/test_jobspec_hcl_simple.py checks both on every construct it takes.
"""
from __future__ import annotations

import re

from lark import Token, Tree

from nomadmesh.jobspec.syntax import Attr, Block, Body

# python-hcl2's terminals (hcl2.lark), as Lark compiles them; the test checks they still match.
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_-]*")
_STRING_CHARS = re.compile(r'(?:(?!\$\$\{)(?!\$\{)(?!%%\{)(?!%\{)[^"\\]|\\.|(?:\$(?!\$?\{))|(?:%(?!%?\{)))+')
_ESCAPED = {"$": ("ESCAPED_INTERPOLATION", re.compile(r"\$\$\{[^}]*\}")),
            "%": ("ESCAPED_DIRECTIVE", re.compile(r"%%\{[^}]*\}"))}
_EQ = re.compile("[ \t]*=(?!=|>)")  # not a raw string: Lark's pattern holds the tab itself
_INT = re.compile(r"[0-9]+")
# NL_OR_COMMENT, minus `/* */` and `//` comments (a `/` is given up on: it may be a division).
_NEWLINE = re.compile(r"\n[ \t]*|#.*\n")
# The commonest line, `name = "text"` with nothing to interpolate, in one match (see `_Parser._quoted_attr`).
_QUOTED_ATTR = re.compile(f'({_NAME.pattern})({_EQ.pattern})[ \t]*"({_STRING_CHARS.pattern})?"(?=[ \t]*[\n#}}])')
_PLAIN_LABEL = re.compile(r'"([^"\\$%\n]*)"')
_NEWLINE_START = frozenset("\n#")
_NEWLINES_AND_BLANKS = re.compile(r"(?:[ \t]*(?:\n[ \t]*|#.*\n))*[ \t]*")  # all a body's gap between items
_BLANK = re.compile(r"[ \t]*")  # Lark ignores [ \t\r]+ between tokens; a \r is given up on
_KEYWORDS = frozenset(("if", "in", "for", "for_each", "else", "endif", "endfor"))
_LITERALS = {"true": "TRUE", "false": "FALSE", "null": "NULL"}
# What may follow a value or a block (after blanks) for the text to stay in this subset.
_AFTER_ITEM = frozenset("\n#}")
_AFTER_VALUE = frozenset("\n#},]")  # in a body, or in a list


# Token(...) checks for a deprecated keyword on every call; its plain constructor is 2.5x cheaper.
_new_token = getattr(Token, "_future_new", Token)


class PlainString(Tree):
    """`"text"` with nothing to interpolate, the commonest attribute value: Lark's expression tree for
    it (expr_term > string > DBLQUOTE, string_part > STRING_CHARS, DBLQUOTE), whose tokens are only
    made when something walks it (a position for an error message, a test comparing trees). The
    evaluator reads the text straight from `chars` (hcl.Evaluator._e_expr_term)."""

    data = "expr_term"
    _meta = None

    def __init__(self, chars: str, opening: int, line: int, line_start: int) -> None:
        self.chars = chars
        self._where = (opening, line, line_start)
        self._children: list[Tree | Token] | None = None

    @property
    def children(self) -> list[Tree | Token]:  # a Tree's children, made on first use
        if self._children is None:
            opening, line, line_start = self._where
            chars = self.chars
            parts: list[Tree | Token] = [_new_token("DBLQUOTE", '"', opening, line, opening - line_start + 1, line,
                                                    opening - line_start + 2, opening + 1)]
            closing = opening + 1 + len(chars)
            if chars:
                parts.append(Tree("string_part", [_new_token("STRING_CHARS", chars, opening + 1, line,
                                                             opening - line_start + 2, line,
                                                             closing - line_start + 1, closing)]))
            parts.append(_new_token("DBLQUOTE", '"', closing, line, closing - line_start + 1, line,
                                    closing - line_start + 2, closing + 1))
            self._children = [Tree("string", parts)]
        return self._children

    @children.setter
    def children(self, value: list[Tree | Token]) -> None:
        self._children = value


class _GiveUp(Exception):
    """The text leaves the subset: Lark parses it."""


def simple_body(text: str) -> Body | None:
    """`text` (ending in the grammar's newline) read as `hcl.parse` reads it, when it is plain HCL; else None."""
    if "\r" in text or "/*" in text:
        return None
    try:
        return _Parser(text).start()
    except (_GiveUp, IndexError):  # IndexError: the text ended inside a construct
        return None


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.line = 1
        self.line_start = 0  # index of the current line's first character

    # -- tokens
    def _token(self, type_: str, end: int) -> Token:
        start, column = self.pos, self.pos - self.line_start + 1
        self.pos = end
        return _new_token(type_, self.text[start:end], start, self.line, column, self.line,
                          end - self.line_start + 1, end)

    def _peek(self) -> str:
        """The next character that is not a blank (Lark skips blanks between tokens), "" at the end."""
        char = self.text[self.pos:self.pos + 1]
        if char == " " or char == "\t":
            self.pos = _BLANK.match(self.text, self.pos).end()  # type: ignore[union-attr]  # always matches
            char = self.text[self.pos:self.pos + 1]
        return char

    def _skip_newlines(self) -> str:
        """Pass over newlines, comments and blanks (a body's are not in its `Body`), in one match;
        the next character."""
        text, start = self.text, self.pos
        end = _NEWLINES_AND_BLANKS.match(text, start).end()  # type: ignore[union-attr]  # always matches
        lines = text.count("\n", start, end)
        if lines:
            self.line += lines
            self.line_start = text.rindex("\n", start, end) + 1
        self.pos = end
        return text[end:end + 1]

    def _newlines(self) -> Tree | None:
        """new_line_or_comment: every NL_OR_COMMENT token from here (with the blanks between them)."""
        tokens = []
        while self._peek() in _NEWLINE_START:
            m = _NEWLINE.match(self.text, self.pos)
            if m is None:
                break
            start, end = self.pos, m.end()
            line, column = self.line, start - self.line_start + 1
            newline = self.text.index("\n", start)  # each token holds exactly one
            self.line, self.line_start, self.pos = line + 1, newline + 1, end
            tokens.append(_new_token("NL_OR_COMMENT", m.group(), start, line, column, line + 1, end - newline, end))
        return Tree("new_line_or_comment", tokens) if tokens else None

    def _word(self) -> tuple[str, int]:
        m = _NAME.match(self.text, self.pos)
        if m is None:
            raise _GiveUp
        return m.group(), m.end()

    def _name(self) -> str:
        """An attribute name, block type or unquoted label (Lark also takes keywords there: it decides)."""
        word, end = self._word()
        if word in _KEYWORDS or word in _LITERALS:
            raise _GiveUp
        self.pos = end
        return word

    def _identifier(self) -> Tree:
        word, end = self._word()
        if word in _KEYWORDS or word in _LITERALS:
            raise _GiveUp
        return Tree("identifier", [self._token("NAME", end)])

    # -- structure
    def start(self) -> Body:
        body = self._body(top=True)
        if self.pos != len(self.text):
            raise _GiveUp
        return body

    def _body(self, top: bool) -> Body:
        body = Body()
        while True:
            next_char = self._skip_newlines()
            if next_char == ("" if top else "}"):  # the end of the text, or of the block
                return body
            quoted = _QUOTED_ATTR.match(self.text, self.pos)
            if quoted is not None and self._quoted_attr(quoted, body):
                continue
            line, column = self.line, self.pos - self.line_start + 1
            name = self._name()
            eq = _EQ.match(self.text, self.pos)
            if eq is not None:
                if name in body.attrs:
                    raise _GiveUp  # an error: Lark's reading says so, and where
                self.pos = eq.end()
                body.attrs[name] = Attr(name, self._expression(), line, column)
            else:
                labels = []
                while (next_char := self._peek()) != "{":
                    labels.append(self._label() if next_char == '"' else self._name())
                self.pos += 1
                inner = self._body(top=False)
                self.pos += 1  # its closing brace
                body.blocks.append(Block(name, labels, inner, line, column))
            if self._peek() not in _AFTER_ITEM:
                raise _GiveUp

    def _quoted_attr(self, m: re.Match[str], body: Body) -> bool:
        """Add `name = "text"` to the body as `_expression` would read it; False when it is not that simple."""
        name, chars = m.group(1), m.group(3) or ""
        if name in _KEYWORDS or name in _LITERALS or name in body.attrs or "\n" in chars:
            return False
        opening = m.end() - len(chars) - 2  # where the string's quote is
        body.attrs[name] = Attr(name, PlainString(chars, opening, self.line, self.line_start), self.line,
                                self.pos - self.line_start + 1)
        self.pos = opening + len(chars) + 2
        return True

    def _label(self) -> str:
        """A quoted block label with nothing to unescape or interpolate in it."""
        m = _PLAIN_LABEL.match(self.text, self.pos)
        if m is None:
            raise _GiveUp
        self.pos = m.end()
        return m.group(1)

    # -- expressions
    def _expression(self) -> Tree:
        next_char = self._peek()
        if next_char == '"':
            term = self._string()
        elif next_char == "[":
            term = self._tuple()
        elif next_char.isdigit():
            end = _INT.match(self.text, self.pos).end()  # type: ignore[union-attr]  # a digit is there
            if end < len(self.text) and (self.text[end] in ".eE-_" or self.text[end].isalnum()):
                raise _GiveUp  # a float, or not a number
            term = Tree("int_lit", [self._token("INT_LITERAL", end)])
        else:
            word, end = self._word()
            if word in _LITERALS:
                term = Tree("literal_value", [self._token(_LITERALS[word], end)])
            else:
                term = self._identifier()
        if self._peek() not in _AFTER_VALUE:
            raise _GiveUp  # an operator, a call, an index...: more than a plain value
        return Tree("expr_term", [term])

    def _tuple(self) -> Tree:
        parts: list[Tree | Token] = [self._token("LSQB", self.pos + 1)]
        while True:
            newlines = self._newlines()
            if newlines is not None:
                parts.append(newlines)
            if self._peek() == "]":
                break
            parts.append(self._expression())
            newlines = self._newlines()
            if newlines is not None:
                parts.append(newlines)
            next_char = self._peek()
            if next_char == ",":
                parts.append(self._token("COMMA", self.pos + 1))
            elif next_char != "]":
                raise _GiveUp
        parts.append(self._token("RSQB", self.pos + 1))
        return Tree("tuple", parts)

    def _string(self) -> Tree:
        text = self.text
        parts: list[Tree | Token] = [self._token("DBLQUOTE", self.pos + 1)]
        while (char := text[self.pos]) != '"':
            if text.startswith("${", self.pos):
                part: Tree | Token = self._interpolation()
            elif char in _ESCAPED and text.startswith(char * 2 + "{", self.pos):
                type_, pattern = _ESCAPED[char]
                m = pattern.match(text, self.pos)
                if m is None:
                    raise _GiveUp
                part = self._token(type_, m.end())
            elif text.startswith("%{", self.pos):
                raise _GiveUp  # a template directive
            else:
                m = _STRING_CHARS.match(text, self.pos)
                if m is None:
                    raise _GiveUp
                part = self._token("STRING_CHARS", m.end())
            if isinstance(part, Token) and "\n" in part:  # a string across lines: Lark decides
                raise _GiveUp
            parts.append(Tree("string_part", [part]))
        parts.append(self._token("DBLQUOTE", self.pos + 1))
        return Tree("string", parts)

    def _interpolation(self) -> Tree:
        """`${name}` or `${name.attr...}`: a runtime variable or var.* / local.* reference."""
        start = self._token("INTERP_START", self.pos + 2)
        self._peek()
        term = Tree("expr_term", [self._identifier()])
        while self.text[self.pos] == ".":
            dot = self._token("DOT", self.pos + 1)
            term = Tree("expr_term", [Tree("get_attr_expr_term", [term, Tree("get_attr", [dot, self._identifier()])])])
        if self._peek() != "}":
            raise _GiveUp
        return Tree("interpolation", [start, term, self._token("RBRACE", self.pos + 1)])
