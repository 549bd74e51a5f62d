"""HCL2 text → a small syntax tree of bodies, attributes and blocks, and an expression evaluator.

Plain HCL (what nomadmesh renders, and most jobs) is read without Lark by `hcl_simple`, into the
same tree, in a third of the time; anything else, syntax errors included, is read as follows.

python-hcl2's dict output cannot tell `"${x}"` from `"$${x}"` once unquoted, nor a block from an
object, and it drops positions; so we take a Lark parse tree of python-hcl2's grammar and walk it
ourselves. The Lark parser is ours (`_parser`): built once per process from python-hcl2's grammar
and post-lexer, its LALR tables cached on disk, and without `propagate_positions`, which cost
nearly half of each parse while every position we need is on the tokens (`_pos`, `source_text`).
The same grammar is first tried with lark-cython's lexer and parser (`_fast_parser`), a quarter
faster; it cannot run python-hcl2's post-lexer, which only joins a newline to a binary operator
after it (`a\n  && b`), so whatever it refuses, syntax errors included, is parsed again by the
Python parser, which alone decides what is an error and says where.
Attribute values stay unevaluated Lark trees until the decoder asks for them, because they may
refer to `var.*` and `local.*`, which are known only after the top-level `variable` and `locals`
blocks are read.

Evaluation follows HCL's rules where Nomad's jobspec relies on them:
- quoted strings resolve `\\n`, `\\"`, `\\uXXXX` … escapes; `$${` → `${` and `%%{` → `%{`;
- heredocs (`<<EOF`, `<<-EOF`) resolve only `$${` / `%%{`, keep their final newline, and `<<-`
  strips the common indentation;
- `${var.x}` / `${local.x}` interpolations are evaluated; any other reference (`${NOMAD_PORT_http}`,
  `${node.unique.name}`, `${attr.x}`, `${meta.x}`, `${env["X"]}`) is a Nomad runtime variable and
  stays in the string exactly as written, as Nomad's own HCL2 parser leaves it.
"""
from __future__ import annotations

import functools
import operator
import re
import sys
from collections.abc import Callable
from importlib.metadata import version
from typing import Any, TypeGuard

from hcl2.postlexer import PostLexer
from hcl2.utils import process_escape_sequences  # HCL's own escape rules (python-hcl2's strip_string_quotes uses it)
from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from nomadmesh.jobspec.errors import JobspecError
from nomadmesh.jobspec.hcl_simple import PlainString, simple_body
from nomadmesh.jobspec.syntax import Attr, Block, Body
from nomadmesh.user_cache import user_cache_dir

try:  # lark-cython's tokens are its own class, with lark.Token's fields and str() but not a str
    from lark_cython import Token as _CythonToken  # type: ignore[import-untyped]

    _TOKENS: tuple[type, ...] = (Token, _CythonToken)
except ImportError:  # pragma: no cover - lark-cython is a dependency; the parser works without it
    _TOKENS = (Token,)


def _is_token(node: Any) -> TypeGuard[Token]:
    return isinstance(node, _TOKENS)

_HEREDOC = re.compile(r"<<(-?)([A-Za-z][A-Za-z0-9._-]*)\r?\n([\s\S]*)\2\s*$")


class RuntimeReference(Exception):
    """An expression refers to something only Nomad's client knows (a runtime variable)."""


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    """python-hcl2's own grammar and post-lexer (what `hcl2.parses_to_tree` runs), minus positions on
    the tree nodes. Building the LALR tables takes a second or two, so Lark keeps them in a file
    (`_table_cache`) and a new process loads them in a tenth of that."""
    return Lark.open_from_package("hcl2", "hcl2.lark", parser="lalr", propagate_positions=False,
                                  postlex=PostLexer(), cache=_table_cache())


def _table_cache() -> str | bool:
    """The file for Lark's tables: in the user's own cache folder, never a shared one such as /tmp,
    because Lark stores them as a pickle. Its name carries the versions that shape the tables, and
    Lark also checks the grammar's hash inside and rebuilds on a mismatch. No cache (False) when
    the folder cannot be made: the parser is only slower to build."""
    folder = user_cache_dir()
    if folder is None:
        return False
    py = "".join(map(str, sys.version_info[:2]))
    return str(folder / f"hcl2-{version('python-hcl2')}-lark-{version('lark')}-py{py}.lalr")


@functools.lru_cache(maxsize=1)
def _fast_parser() -> Lark | None:
    """The grammar on lark-cython (its tokens are not `lark.Token`s: see `_TOKENS`); None without it."""
    try:
        import lark_cython
    except ImportError:
        return None
    cache = _table_cache()
    return Lark.open_from_package("hcl2", "hcl2.lark", parser="lalr", _plugins=lark_cython.plugins,
                                  cache=f"{cache}-lark-cython-{version('lark-cython')}" if cache else False)


def _parse_tree(text: str) -> Tree:
    # The trailing newline is python-hcl2's own workaround: its grammar ends statements with one.
    fast = _fast_parser()
    if fast is not None:
        try:
            return fast.parse(text + "\n")
        except LarkError:
            pass  # a syntax error, or a newline before an operator: the Python parser decides
    return _parser().parse(text + "\n")


def _first_token(node: Any) -> Token | None:
    if _is_token(node):
        return node
    for child in getattr(node, "children", ()):
        tok = _first_token(child)
        if tok is not None:
            return tok
    return None


def _last_token(node: Any) -> Token | None:
    if _is_token(node):
        return node
    for child in reversed(getattr(node, "children", ())):
        tok = _last_token(child)
        if tok is not None:
            return tok
    return None


def _pos(node: Any) -> tuple[int, int]:
    """Line and column where a node starts (its first token: every terminal of the grammar is kept)."""
    tok = _first_token(node)
    if tok is None:
        return 0, 0
    return tok.line or 0, tok.column or 0


def source_text(source: str, node: Any) -> str | None:
    """The exact text a node was parsed from, from its first token's start to its last token's end."""
    first, last = _first_token(node), _last_token(node)
    if first is None or last is None or first.start_pos is None or last.end_pos is None:
        return None
    return source[first.start_pos:last.end_pos]


def _trees(node: Tree) -> list[Tree]:
    """Children that carry meaning: no tokens of punctuation, no newlines or comments."""
    return [c for c in node.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]


def parse(text: str) -> Body:
    """Parse HCL2 text into a Body; syntax errors become JobspecError with line and column."""
    simple = simple_body(text + "\n")  # plain HCL, read without Lark: None for anything else
    return simple if simple is not None else parse_with_lark(text)


def parse_with_lark(text: str) -> Body:
    """`parse` through Lark alone: any HCL2, and the one judge of syntax errors."""
    try:
        tree = _parse_tree(text)
    except UnexpectedInput as exc:
        raise JobspecError(_syntax_message(exc), exc.line if exc.line != -1 else None,
                           exc.column if exc.column != -1 else None) from None
    except LarkError as exc:  # grammar-level failures without a position
        raise JobspecError(f"syntax error: {exc}") from None
    return _body(tree.children[0])


def _syntax_message(exc: UnexpectedInput) -> str:
    if isinstance(exc, UnexpectedEOF):
        return "syntax error: unexpected end of input"
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        if tok.type == "$END":
            return "syntax error: unexpected end of input (unclosed block or string?)"
        text = str(tok).strip().splitlines()[0] if str(tok).strip() else "newline"
        return f"syntax error: unexpected {text!r}"
    if isinstance(exc, UnexpectedCharacters):
        return f"syntax error: unexpected character {exc.char!r}"
    return "syntax error"


def _name(node: Any) -> str:
    """An attribute name or block type/label: identifier, keyword, literal or string."""
    if _is_token(node):
        return str(node)
    if node.data == "string":
        return _plain_string(node)
    return str(node.children[0])


def _plain_string(node: Tree) -> str:
    """A string with no interpolation, used for block labels and object keys."""
    text = []
    for part in node.children:
        if isinstance(part, Tree) and part.data == "string_part":
            content = part.children[0]
            if _is_token(content):
                text.append(_literal_part(content))
            else:
                line, col = _pos(content)
                raise JobspecError("interpolation is not allowed in a block label", line, col)
    return "".join(text)


def _literal_part(tok: Token) -> str:
    value = str(tok)
    if tok.type in ("ESCAPED_INTERPOLATION", "ESCAPED_DIRECTIVE"):
        # python-hcl2 lexes `$${$${}}` as one token: every `$${` / `%%{` in it is an escape, not the first only.
        value = value.replace("$${", "${").replace("%%{", "%{")
    return process_escape_sequences(value)


def _body(node: Tree) -> Body:
    body = Body()
    for child in _trees(node):
        line, col = _pos(child)
        if child.data == "attribute":
            name = _name(child.children[0])
            if name in body.attrs:
                raise JobspecError(f'attribute "{name}" is defined twice', line, col)
            body.attrs[name] = Attr(name, child.children[-1], line, col)
        elif child.data == "block":
            parts = [c for c in child.children if not (_is_token(c) or c.data == "new_line_or_comment")]
            inner = parts[-1]
            names = [_name(p) for p in parts[:-1]]
            body.blocks.append(Block(names[0], names[1:], _body(inner), line, col))
    return body


# --------------------------------------------------------------------------------------------
# Evaluation


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "%": operator.mod,
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt, "<=": operator.le,
    ">=": operator.ge, "&&": lambda a, b: bool(a and b), "||": lambda a, b: bool(a or b),
}

# A few of HCL's standard functions that are pure and common in Nomad jobspecs.
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "upper": lambda s: str(s).upper(),
    "lower": lambda s: str(s).lower(),
    "join": lambda sep, items: str(sep).join(str(i) for i in items),
    "concat": lambda *lists: [x for lst in lists for x in lst],
    "tostring": lambda v: _to_text(v),
    "tonumber": lambda v: _to_number(v),
}


def _to_number(v: Any) -> int | float:
    if isinstance(v, bool):
        raise ValueError("cannot convert bool to number")
    if isinstance(v, (int, float)):
        return v
    text = str(v)
    return int(text) if re.fullmatch(r"-?\d+", text) else float(text)


def _to_text(value: Any) -> str:
    """HCL's conversion of a primitive to string (used when interpolating)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if value is None:
        raise ValueError("cannot interpolate null")
    if isinstance(value, (list, dict)):
        raise ValueError("cannot interpolate a collection into a string")
    return str(value)


class Evaluator:
    """Evaluates expressions against `var.*` and `local.*`; keeps runtime references as text."""

    def __init__(self, source: str, variables: dict[str, Any], locals_: Callable[[str, int, int], Any]):
        self.source = source
        self.variables = variables
        self.lookup_local = locals_

    def value(self, node: Any) -> Any:
        """Evaluate a whole attribute value; a bare runtime reference there is an error."""
        try:
            return self._eval(node)
        except RuntimeReference as exc:
            line, col = _pos(node)
            raise JobspecError(f"unknown variable {exc}: only var.* and local.* can be used outside "
                               "a string; Nomad runtime variables go inside \"${...}\"", line, col) from None

    def _eval(self, node: Any) -> Any:
        if _is_token(node):
            line, col = _pos(node)
            raise JobspecError(f"unexpected {str(node)!r}", line, col)
        kind = str(node.data)  # lark-cython's trees name their rule with a token, not a str
        handler = _HANDLERS.get(kind)  # _e_<kind>, looked up once per class rather than per node
        if handler is None:
            line, col = _pos(node)
            what = kind.replace("_", " ")
            raise JobspecError(f"unsupported expression ({what})", line, col)
        return handler(self, node)

    # -- terms
    def _e_expr_term(self, node: Tree) -> Any:
        if type(node) is PlainString:  # `"text"` as hcl_simple read it: its value without its tree
            return process_escape_sequences(node.chars)
        children = node.children
        if len(children) == 1 and type(children[0]) is Tree:  # the common case: one term, no parentheses
            return self._eval(children[0])
        inner = _trees(node)
        return self._eval(inner[0])

    def _e_int_lit(self, node: Tree) -> int:
        return int(str(node.children[0]))

    def _e_float_lit(self, node: Tree) -> float:
        return float(str(node.children[0]))

    def _e_literal_value(self, node: Tree) -> Any:
        return {"true": True, "false": False, "null": None}[str(node.children[0])]

    def _e_tuple(self, node: Tree) -> list[Any]:
        return [self._eval(c) for c in _trees(node)]

    def _e_object(self, node: Tree) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for elem in _trees(node):
            key_node, value_node = _trees(elem)
            key_expr = _trees(key_node)[0] if _trees(key_node) else key_node.children[0]
            key = self._object_key(key_expr)
            out[key] = self._eval(value_node)
        return out

    def _object_key(self, node: Any) -> str:
        # A bare identifier key (`{ k = 1 }`) names itself; anything else is evaluated.
        if _is_token(node):
            return str(node)
        if node.data == "expr_term" and _trees(node) and _trees(node)[0].data == "identifier":
            return str(_trees(node)[0].children[0])
        if node.data in ("identifier", "keyword"):
            return str(node.children[0])
        return _to_text(self._eval(node))

    def _e_string(self, node: Tree) -> str:
        out: list[str] = []
        for part in node.children:
            if not (isinstance(part, Tree) and part.data == "string_part"):
                continue
            content = part.children[0]
            if _is_token(content):
                out.append(_literal_part(content))
            elif content.data == "interpolation":
                out.append(self._interpolate(content))
            else:
                line, col = _pos(content)
                raise JobspecError("template directives (%{ ... }) are not supported; "
                                   "write %%{ for a literal %{", line, col)
        return "".join(out)

    def _interpolate(self, node: Tree) -> str:
        expr = _trees(node)[0]
        try:
            value = self._eval(expr)
        except RuntimeReference:
            text = source_text(self.source, node)
            if text is None:  # every interpolation has its `${` and `}` tokens
                raise
            return text
        try:
            return _to_text(value)
        except ValueError as exc:
            line, col = _pos(node)
            raise JobspecError(str(exc), line, col) from None

    def _e_heredoc_template(self, node: Tree) -> str:
        return self._heredoc(node)

    def _e_heredoc_template_trim(self, node: Tree) -> str:
        return self._heredoc(node)

    def _heredoc(self, node: Tree) -> str:
        tok = node.children[0]
        if not _is_token(tok) or tok.line is None:  # the grammar gives one positioned token
            raise JobspecError("malformed heredoc")
        match = _HEREDOC.match(str(tok))
        if match is None:  # the grammar accepted it, so this is not expected
            raise JobspecError("malformed heredoc", tok.line, tok.column)
        trim, raw = match.group(1) == "-", match.group(3)
        raw = re.sub(r"[ \t]*\Z", "", raw)  # the closing marker's indentation is not content
        if trim:
            lines = raw.split("\n")
            indents = [len(ln) - len(ln.lstrip(" ")) for ln in lines if ln.strip()]
            cut = min(indents) if indents else 0
            raw = "\n".join(ln[cut:] for ln in lines)
        return self._template_text(raw, tok.line + 1)

    def _template_text(self, raw: str, line: int) -> str:
        """Resolve `$${`, `%%{` and `${...}` in heredoc text (no backslash escapes in heredocs)."""
        out: list[str] = []
        i = 0
        while i < len(raw):
            if raw.startswith("$${", i) or raw.startswith("%%{", i):
                out.append(raw[i + 1:i + 3])
                i += 3
            elif raw.startswith("${", i):
                end = _closing_brace(raw, i + 2)
                if end < 0:
                    raise JobspecError("unclosed ${ in heredoc", line + raw.count("\n", 0, i))
                out.append(self._heredoc_interpolation(raw[i:end + 1], line + raw.count("\n", 0, i)))
                i = end + 1
            elif raw.startswith("%{", i):
                raise JobspecError("template directives (%{ ... }) are not supported; "
                                   "write %%{ for a literal %{", line + raw.count("\n", 0, i))
            else:
                out.append(raw[i])
                i += 1
        return "".join(out)

    def _heredoc_interpolation(self, text: str, line: int) -> str:
        inner = text[2:-1]
        try:
            tree = _parse_tree(f"x = {inner}\n")
        except LarkError:
            raise JobspecError(f"invalid expression in {text!r}", line) from None
        expr = tree.children[0].children[0].children[-1]
        try:
            return _to_text(self._eval(expr))
        except RuntimeReference:
            return text
        except ValueError as exc:
            raise JobspecError(str(exc), line) from None

    # -- references
    def _e_identifier(self, node: Tree) -> Any:
        raise RuntimeReference(str(node.children[0]))

    def _e_get_attr_expr_term(self, node: Tree) -> Any:
        return self._traverse(node)

    def _e_index_expr_term(self, node: Tree) -> Any:
        return self._traverse(node)

    def _traverse(self, node: Tree) -> Any:
        steps: list[tuple[str, Any]] = []
        cur: Any = node
        while isinstance(cur, Tree) and cur.data in ("get_attr_expr_term", "index_expr_term", "expr_term"):
            if cur.data == "expr_term":
                inner = _trees(cur)
                if len(inner) != 1 or inner[0].data not in ("get_attr_expr_term", "index_expr_term"):
                    break
                cur = inner[0]
                continue
            base, step = _trees(cur)
            if step.data == "get_attr":
                steps.append(("attr", str(_trees(step)[0].children[0])))
            elif step.data == "short_index":
                steps.append(("index", int(str(step.children[-1]))))
            else:  # braces_index
                steps.append(("index_expr", _trees(step)[0]))
            cur = base
        inner = _trees(cur) if isinstance(cur, Tree) and cur.data == "expr_term" else [cur]
        root_node = inner[0] if inner else cur
        steps.reverse()
        if not (isinstance(root_node, Tree) and root_node.data == "identifier"):
            value = self._eval(cur)
            return self._apply(value, steps, node)
        root = str(root_node.children[0])
        line, col = _pos(node)
        if root not in ("var", "local"):
            raise RuntimeReference(source_text(self.source, node) or root)
        if not steps or steps[0][0] != "attr":
            raise JobspecError(f'"{root}" must be followed by .<name>', line, col)
        name = steps[0][1]
        if root == "var":
            if name not in self.variables:
                # HCL's own words: `var` is an object without that attribute.
                raise JobspecError(f'Unsupported attribute; This object does not have an attribute named "{name}".',
                                   line, col)
            value = self.variables[name]
        else:
            value = self.lookup_local(name, line, col)
        return self._apply(value, steps[1:], node)

    def _apply(self, value: Any, steps: list[tuple[str, Any]], node: Tree) -> Any:
        line, col = _pos(node)
        for kind, key in steps:
            if kind == "index_expr":
                key = self._eval(key)
            try:
                if isinstance(value, list):
                    value = value[int(key)]
                elif isinstance(value, dict):
                    value = value[str(key)]
                else:
                    raise KeyError(key)
            except (KeyError, IndexError, ValueError, TypeError):
                raise JobspecError(f"invalid index or attribute {key!r}", line, col) from None
        return value

    # -- operators
    def _e_unary_op(self, node: Tree) -> Any:
        op = str(node.children[0])
        value = self._eval(node.children[1])
        line, col = _pos(node)
        if op == "-":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise JobspecError("unary - needs a number", line, col)
            return -value
        if not isinstance(value, bool):
            raise JobspecError("! needs a bool", line, col)
        return not value

    def _e_binary_op(self, node: Tree) -> Any:
        left_node, term = _trees(node)[:2]
        op_node, right_node = _trees(term)
        # python-hcl2's post-lexer prefixes the newline (and comment) before an operator that starts
        # a line to the operator's own token: the operator is its last word.
        op = str(op_node.children[0]).split()[-1]
        left, right = self._eval(left_node), self._eval(right_node)
        try:
            result = _BINARY[op](left, right)
        except (TypeError, ZeroDivisionError) as exc:
            line, col = _pos(node)
            raise JobspecError(f"cannot apply {op}: {exc}", line, col) from None
        if op == "/" and isinstance(result, float) and result.is_integer():
            return int(result)
        return result

    def _e_conditional(self, node: Tree) -> Any:
        cond, if_true, if_false = _trees(node)
        test = self._eval(cond)
        if not isinstance(test, bool):
            line, col = _pos(cond)
            raise JobspecError("condition must be a bool", line, col)
        return self._eval(if_true if test else if_false)

    def _e_function_call(self, node: Tree) -> Any:
        ident = _trees(node)[0]
        name = str(ident.children[0])
        line, col = _pos(node)
        fn = _FUNCTIONS.get(name)
        if fn is None:
            raise JobspecError(f'unsupported function "{name}"', line, col)
        args_nodes = [t for t in _trees(node)[1:] if t.data == "arguments"]
        args = [self._eval(a) for a in _trees(args_nodes[0])] if args_nodes else []
        try:
            return fn(*args)
        except (TypeError, ValueError) as exc:
            raise JobspecError(f'function "{name}": {exc}', line, col) from None


# Each expression kind's evaluator (`_e_<kind>`), by kind.
_HANDLERS: dict[str, Callable[[Evaluator, Any], Any]] = {
    name.removeprefix("_e_"): fn for name, fn in vars(Evaluator).items() if name.startswith("_e_")
}


def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` closing a `${` whose body starts at `start`, skipping quoted strings."""
    depth, i, quoted = 1, start, False
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1
