"""Consul's `?filter=` expressions (go-bexpr's grammar), parsed with Lark and evaluated on the
endpoints' JSON rows. Pure, no I/O.

    Expression := Match | "not" Expression | "(" Expression ")" | Expression ("and" | "or") Expression
    Match      := Selector ("==" | "!=") Value | Selector "is" ["not"] "empty"
                | Value ["not"] "in" Selector | Selector ["not"] ("contains" | "matches") Value
    Selector   := Name ("." Name | "[" "quoted key" "]")*      e.g. Service.Tags, ServiceMeta.env
    Value      := "double quoted" | `backquoted` | a bare word or number

`not` binds tighter than `and`, `and` tighter than `or`. A selector is checked against the
endpoint's fields when the filter is compiled (an unknown one is refused, as Consul refuses it);
map fields (Meta, NodeMeta, TaggedAddresses...) take any key, and a missing key is no match for
`==` and a match for `!=`. A selector through a list of structs (`Checks.Status`) yields the list
of values. `==` on a bool or number field compares as that type. `matches` is RE2 (google-re2,
linear time), so a hostile pattern cannot hang the agent.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import re2
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

_GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr ("or" and_expr)*  -> any_of
?and_expr: not_expr ("and" not_expr)*  -> all_of
?not_expr: "not" not_expr  -> negate
         | "(" or_expr ")"
         | match
match: selector "==" value  -> eq
     | selector "!=" value  -> ne
     | selector "is" "empty"  -> empty
     | selector "is" "not" "empty"  -> not_empty
     | operand "in" selector  -> in_
     | operand "not" "in" selector  -> not_in
     | selector "contains" value  -> contains
     | selector "not" "contains" value  -> not_contains
     | selector "matches" value  -> matches
     | selector "not" "matches" value  -> not_matches
operand: STRING | NUMBER | selector
selector: NAME ("." NAME | "[" STRING "]")*
value: STRING | BAREWORD
NAME: /[A-Za-z_][A-Za-z0-9_]*/
BAREWORD: /[A-Za-z0-9_\/.:+-]+/
NUMBER: /-?[0-9]+(\.[0-9]+)?/
STRING: /"(?:[^"\\]|\\.)*"/ | /`[^`]*`/
%import common.WS
%ignore WS
"""

PREFIX = "Failed to create boolean expression evaluator: "
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
MAX_FILTER_CHARS = 4096  # a filter is a line or two; refuse a megabyte of nesting early

# A field spec: "str", "int", "bool", "map" (string keys, any key allowed), "list" (of scalars),
# a dict (a struct) or ("list", dict) (a list of structs).
Schema = dict[str, Any]


class FilterError(ValueError):
    """A filter that cannot be compiled for this endpoint; the message is Consul's 400 text."""


_MISSING = object()


@dataclass(frozen=True)
class Selector:
    parts: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join(self.parts)


def _unquote(token: str) -> str:
    """A quoted value: backquotes are raw; double quotes take escapes (JSON's, close to Go's)."""
    if token.startswith("`"):
        return token[1:-1]
    try:
        return str(json.loads(token))
    except ValueError:
        raise FilterError(f"{PREFIX}invalid quoted string {token}") from None


Predicate = Callable[[dict[str, Any]], bool]


@v_args(inline=True)
class _Build(Transformer[Token, Any]):
    """Parse tree -> (predicate, selectors used); selectors are checked against the schema after."""

    def __init__(self) -> None:
        super().__init__()
        self.selectors: list[Selector] = []

    def selector(self, *parts: Token) -> Selector:
        sel = Selector(tuple(_unquote(p) if p.type == "STRING" else str(p) for p in parts))
        self.selectors.append(sel)
        return sel

    def value(self, token: Token) -> str:
        return _unquote(token) if token.type == "STRING" else str(token)

    def operand(self, item: Any) -> str:
        if isinstance(item, Selector):  # a bare word left of `in` is a value, not a field
            self.selectors.remove(item)
            return str(item)
        return _unquote(item) if item.type == "STRING" else str(item)

    def any_of(self, *preds: Predicate) -> Predicate:
        return lambda row: any(p(row) for p in preds)

    def all_of(self, *preds: Predicate) -> Predicate:
        return lambda row: all(p(row) for p in preds)

    def negate(self, pred: Predicate) -> Predicate:
        return lambda row: not pred(row)

    def eq(self, sel: Selector, value: str) -> Predicate:
        return lambda row: _equal(_resolve(row, sel.parts), value)

    def ne(self, sel: Selector, value: str) -> Predicate:
        return lambda row: not _equal(_resolve(row, sel.parts), value)

    def empty(self, sel: Selector) -> Predicate:
        return lambda row: _is_empty(_resolve(row, sel.parts))

    def not_empty(self, sel: Selector) -> Predicate:
        return lambda row: not _is_empty(_resolve(row, sel.parts))

    def in_(self, value: str, sel: Selector) -> Predicate:
        return lambda row: _contains(_resolve(row, sel.parts), value)

    def not_in(self, value: str, sel: Selector) -> Predicate:
        return lambda row: not _contains(_resolve(row, sel.parts), value)

    def contains(self, sel: Selector, value: str) -> Predicate:
        return self.in_(value, sel)

    def not_contains(self, sel: Selector, value: str) -> Predicate:
        return self.not_in(value, sel)

    def matches(self, sel: Selector, value: str) -> Predicate:
        regex = _compile_regex(value)
        return lambda row: _matches(_resolve(row, sel.parts), regex)

    def not_matches(self, sel: Selector, value: str) -> Predicate:
        regex = _compile_regex(value)
        return lambda row: not _matches(_resolve(row, sel.parts), regex)


@functools.cache
def _parser() -> Lark:
    return Lark(_GRAMMAR, parser="lalr", lexer="contextual")


def _compile_regex(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as e:
        detail = e.args[0] if e.args else str(e)
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise FilterError(f"{PREFIX}error parsing regexp: {detail}: `{pattern}`") from None


def _resolve(row: Any, parts: tuple[str, ...]) -> Any:
    value = row
    for i, part in enumerate(parts):
        if isinstance(value, list):  # through a list of structs: the list of their values
            return [v for v in (_resolve(item, parts[i:]) for item in value) if v is not _MISSING]
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _scalar_equal(actual: Any, wanted: str) -> bool:
    if actual is _MISSING or actual is None:
        return False
    if isinstance(actual, bool):
        return wanted.lower() in ("true", "t", "1") if actual else wanted.lower() in ("false", "f", "0")
    if isinstance(actual, (int, float)):
        try:
            return float(wanted) == float(actual)
        except ValueError:
            return False
    return str(actual) == wanted


def _equal(actual: Any, wanted: str) -> bool:
    if isinstance(actual, list):
        return any(_scalar_equal(a, wanted) for a in actual)
    return _scalar_equal(actual, wanted)


def _is_empty(actual: Any) -> bool:
    return actual is _MISSING or actual is None or (isinstance(actual, (str, list, dict)) and len(actual) == 0)


def _contains(container: Any, wanted: str) -> bool:
    if isinstance(container, dict):
        return wanted in container
    if isinstance(container, list):
        return any(_scalar_equal(item, wanted) for item in container)
    if isinstance(container, str):
        return wanted in container
    return False


def _matches(actual: Any, regex: Any) -> bool:
    if isinstance(actual, list):
        return any(isinstance(a, str) and regex.search(a) is not None for a in actual)
    return isinstance(actual, str) and regex.search(actual) is not None


def _check_selector(sel: Selector, schema: Schema) -> None:
    spec: Any = schema
    for part in sel.parts:
        if isinstance(spec, tuple):  # a list of structs: its elements' fields
            spec = spec[1]
        if spec == "map":
            return  # any key
        if not isinstance(spec, dict) or part not in spec:
            raise FilterError(f'{PREFIX}Selector "{sel}" is not valid')
        spec = spec[part]


def _describe(terminal: str) -> str:
    """A terminal as a reader knows it: `"=="`, `"and"`, or its name for a pattern (NAME, STRING)."""
    try:
        pattern = _parser().get_terminal(terminal).pattern
    except KeyError:
        return terminal
    return f'"{pattern.value}"' if pattern.type == "str" else terminal


def _syntax_error(expression: str, e: UnexpectedInput) -> FilterError:
    pos = e.pos_in_stream if e.pos_in_stream is not None else len(expression)
    col = pos + 1
    if (isinstance(e, UnexpectedToken) and e.token.type == "$END") or isinstance(e, UnexpectedEOF):
        pos, col = len(expression), len(expression) + 1
    names = sorted(getattr(e, "expected", None) or getattr(e, "allowed", None) or [])
    what = ", ".join(_describe(n) for n in names) if names else "end of input"
    return FilterError(f"{PREFIX}1:{col} ({pos}): no match found, expected: {what}")


def compile_filter(expression: str, schema: Schema) -> Predicate:
    """A predicate over the endpoint's rows; FilterError with Consul's text when invalid."""
    if len(expression) > MAX_FILTER_CHARS:
        raise FilterError(f"{PREFIX}filter longer than {MAX_FILTER_CHARS} characters")
    try:
        tree = _parser().parse(expression)
    except (UnexpectedCharacters, UnexpectedToken, UnexpectedEOF) as e:
        raise _syntax_error(expression, e) from None
    except LarkError as e:  # pragma: no cover - other parse failures, one line
        raise FilterError(f"{PREFIX}{e}".splitlines()[0]) from None
    build = _Build()
    try:
        predicate: Predicate = build.transform(tree)
    except LarkError as e:
        cause = e.__context__
        if isinstance(cause, FilterError):
            raise cause from None
        raise FilterError(f"{PREFIX}{e}".splitlines()[0]) from None
    for sel in build.selectors:
        _check_selector(sel, schema)
    return predicate


# --- the endpoints' fields (Consul's API docs, "Filtering" tables) ---------------------------

_WEIGHTS = {"Passing": "int", "Warning": "int"}
_UPSTREAM: Schema = dict.fromkeys(("DestinationType", "DestinationNamespace", "DestinationPartition",
                                   "DestinationPeer", "DestinationName", "Datacenter", "LocalBindAddress"), "str")
_UPSTREAM.update({"LocalBindPort": "int", "Config": "map", "MeshGateway": "map"})
_PROXY = {"DestinationServiceName": "str", "DestinationServiceID": "str", "LocalServiceAddress": "str",
          "LocalServicePort": "int", "Mode": "str", "Config": "map", "MeshGateway": "map",
          "Upstreams": ("list", _UPSTREAM), "Expose": "map", "TransparentProxy": "map"}
_CONNECT = {"Native": "bool", "SidecarService": "map"}

AGENT_SERVICE: Schema = {
    "ID": "str", "Service": "str", "Tags": "list", "Meta": "map", "Port": "int", "Address": "str",
    "SocketPath": "str", "TaggedAddresses": "map", "Weights": _WEIGHTS, "EnableTagOverride": "bool",
    "Kind": "str", "Proxy": _PROXY, "Connect": _CONNECT, "Datacenter": "str", "PeerName": "str",
    "Namespace": "str", "Partition": "str", "Locality": "map",
}
HEALTH_CHECK: Schema = {
    "Node": "str", "CheckID": "str", "Name": "str", "Status": "str", "Notes": "str", "Output": "str",
    "ServiceID": "str", "ServiceName": "str", "ServiceTags": "list", "Type": "str", "Interval": "str",
    "Timeout": "str", "ExposedPort": "int", "Definition": "map", "PeerName": "str", "Namespace": "str",
    "Partition": "str",
}
NODE: Schema = {"ID": "str", "Node": "str", "Address": "str", "Datacenter": "str", "TaggedAddresses": "map",
                "Meta": "map", "PeerName": "str", "Partition": "str"}
SERVICE_NODE: Schema = {
    "ID": "str", "Node": "str", "Address": "str", "Datacenter": "str", "TaggedAddresses": "map",
    "NodeMeta": "map", "ServiceKind": "str", "ServiceID": "str", "ServiceName": "str", "ServiceTags": "list",
    "ServiceAddress": "str", "ServiceTaggedAddresses": "map", "ServiceWeights": _WEIGHTS, "ServiceMeta": "map",
    "ServicePort": "int", "ServiceSocketPath": "str", "ServiceEnableTagOverride": "bool", "ServiceProxy": _PROXY,
    "ServiceConnect": _CONNECT, "PeerName": "str", "Namespace": "str", "Partition": "str",
}
CHECK_SERVICE_NODE: Schema = {"Node": NODE, "Service": AGENT_SERVICE, "Checks": ("list", HEALTH_CHECK)}


def syntax_problem(expression: str) -> str | None:
    """go-bexpr's parse error for `expression` without the endpoint prefix, None when it parses.

    For filters Consul only parses at write time (a service-resolver subset's Filter: its Validate
    creates the evaluator with no data type), so no selector is checked."""
    try:
        compile_filter(expression, _ANY_FIELDS)
    except FilterError as e:
        return str(e).removeprefix(PREFIX)
    return None


class _AnyFields(dict[str, Any]):
    """A schema where every selector is valid (no data type to check against)."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> Any:
        return "map"


_ANY_FIELDS: Schema = _AnyFields()
