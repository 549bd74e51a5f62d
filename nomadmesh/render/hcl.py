"""HCL literals and layout: the one place user values become HCL source text.

Every string a user wrote reaches a job file through `hcl_string`; every name that becomes an
HCL identifier (env/meta keys) through `hcl_ident`. Templates get these as their only filters,
so no template can interpolate a raw value.

Escaping follows the HCL native-syntax spec: backslash, quote, newline, CR and tab get their
backslash escapes, other control characters (and U+2028/U+2029) become \\uXXXX, and the template
introducers `${` / `%{` are doubled (`$${` / `%%{`) so they stay literal text.

One exception to the doubling, for python-hcl2's sake (we verify our output with it): its lexer
only accepts `$${...}` when a `}` follows inside the same string (`/\\$\\$\\{[^}]*\\}/`); without
one it fails, or worse, scans on past the closing quote. When no `}` follows we write the brace
as `\\u007b` instead (`$\\u007b`). HCL scans for `${` in the raw text before decoding escapes,
so both spellings mean the literal characters `${` to Nomad and to python-hcl2.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nomadmesh.errors import RenderError

_SIMPLE = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Characters that need an escape of some kind; everything else is copied through unchanged.
_NEEDS_WORK = re.compile(r'[\\"\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]|[$%]\{')
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def hcl_string(value: str) -> str:
    """Return `value` as a quoted HCL string literal that evaluates to exactly `value`."""
    if not isinstance(value, str):
        raise RenderError(f"expected a string for HCL, got {type(value).__name__}: {value!r}")
    if not _NEEDS_WORK.search(value):
        return f'"{value}"'  # the common case: nothing to escape
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c in _SIMPLE:
            out.append(_SIMPLE[c])
        elif c in "$%" and i + 1 < n and value[i + 1] == "{":
            # Doubling is the documented escape; see the module docstring for the \u007b form.
            out.append(c + c + "{" if "}" in value[i + 2 :] else c + "\\u007b")
            i += 2
            continue
        elif "\ud800" <= c <= "\udfff":
            raise RenderError(f"string {value!r} contains a lone surrogate, which is not valid text")
        elif c < " " or "\x7f" <= c <= "\x9f" or c in "\u2028\u2029":
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
        i += 1
    return '"' + "".join(out) + '"'


@dataclass(frozen=True)
class VarPath:
    """A path under the folder an HCL2 variable names: `"${var.<var_name>}/<rel>"` in the job file.
    What differs per machine stays out of the file; the value is passed when the job is parsed."""

    var_name: str
    rel: str


def hcl_var_path(value: VarPath) -> str:
    """`"${var.project_dir}/services/order"`: the interpolation is ours, the path part is escaped."""
    if not isinstance(value, VarPath):
        raise RenderError(f"expected a variable path for HCL, got {type(value).__name__}: {value!r}")
    name = hcl_ident(value.var_name)
    return '"${var.' + name + "}" + (f"/{hcl_string(value.rel)[1:-1]}" if value.rel else "") + '"'


def hcl_list(values: Iterable[str]) -> str:
    """A one-line HCL list of strings, each escaped by `hcl_string`."""
    return "[" + ", ".join(hcl_string(v) for v in values) + "]"


def hcl_ident(name: str) -> str:
    """Return `name` unchanged if it is a plain HCL identifier; refuse anything else.

    The spec validates names and keys already; this is the second lock, so a key that slipped
    through can never open a block or an attribute of its own.
    """
    if not isinstance(name, str) or not _IDENT.match(name):
        raise RenderError(f"{name!r} cannot be an HCL identifier (letters, digits, '_' and '-' only)")
    return name


def hcl_int(value: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RenderError(f"expected an integer for HCL, got {value!r}")
    return str(value)


def hcl_bool(value: bool) -> str:
    if not isinstance(value, bool):
        raise RenderError(f"expected a boolean for HCL, got {value!r}")
    return "true" if value else "false"


def hcl_fmt(text: str) -> str:
    """Lay out HCL the way `nomad fmt` / `terraform fmt` do, for the shapes our templates emit.

    Indent two spaces per block level and align the `=` of consecutive single-line attributes
    in a block; a blank line or a nested block ends the run. Lines are one of: blank, `}`,
    a block header ending in `{`, an empty block ending in `{}`, or an attribute `key = value`
    (keys are identifiers, values never span lines and never end in `{`). Drops doubled blank
    lines and blank lines next to braces. One pass, no regex: this runs once per job.
    """
    out: list[str] = []
    keys: list[str] = []  # the current run of attributes
    values: list[str] = []
    depth = 0
    indent = ""

    def flush() -> None:
        if len(keys) == 1:  # the commonest run: nothing to align
            out.append(f"{indent}{keys[0]} = {values[0]}")
        else:
            width = max(map(len, keys))
            out.extend([f"{indent}{k.ljust(width)} = {v}" for k, v in zip(keys, values, strict=True)])
        keys.clear()
        values.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            if keys:
                flush()
            if out and out[-1] and not out[-1].endswith("{"):
                out.append("")
            continue
        if line == "}":
            if keys:
                flush()
            if out and not out[-1]:
                out.pop()
            depth -= 1
            indent = "  " * depth
            out.append(indent + "}")
        elif line[-1] == "{":
            if keys:
                flush()
            out.append(indent + line)
            depth += 1
            indent = "  " * depth
        elif line.endswith("{}"):  # an empty block, e.g. `sidecar_service {}`
            if keys:
                flush()
            out.append(indent + line)
        else:
            key, sep, value = line.partition("=")
            if not sep:
                raise RenderError(f"template produced a line that is not HCL: {line!r}")
            keys.append(key.rstrip())
            values.append(value.lstrip())
    if keys:
        flush()
    if depth != 0:
        raise RenderError(f"template produced unbalanced braces (depth {depth} at end)")
    return "\n".join(out) + "\n"


def _hcl_scalar(value: object) -> str:
    if isinstance(value, str):
        return hcl_string(value)
    if isinstance(value, bool):
        return hcl_bool(value)
    if isinstance(value, int):
        return hcl_int(value)
    if isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")):
        return repr(value)
    raise RenderError(f"expected a string, number or boolean for HCL, got {type(value).__name__}: {value!r}")


def hcl_body(value: Mapping[str, Any], labelled: frozenset[str] = frozenset()) -> str:
    """A JSON object in Nomad's HCL structure, written as an HCL body (one item a line).

    An object is a block, a list of objects repeated blocks, anything else an attribute. Keys in
    `labelled` (e.g. group `volume`) map label -> body: one `key "label" { ... }` block each.
    Every string passes `hcl_string`, every key `hcl_ident`: no value can open a block of its own."""
    if not isinstance(value, Mapping):
        raise RenderError(f"expected an object for an HCL body, got {type(value).__name__}: {value!r}")
    lines: list[str] = []
    for key, item in value.items():
        name = hcl_ident(key)
        if name in labelled and isinstance(item, Mapping):
            for label, body in item.items():
                lines += [f"{name} {hcl_string(label)} {{", hcl_body(body), "}"]
        elif isinstance(item, Mapping):
            lines += [f"{name} {{", hcl_body(item), "}"]
        elif isinstance(item, list) and item and all(isinstance(i, Mapping) for i in item):
            for body in item:
                lines += [f"{name} {{", hcl_body(body), "}"]
        elif isinstance(item, list):
            lines.append(f"{name} = [" + ", ".join(_hcl_scalar(i) for i in item) + "]")
        else:
            lines.append(f"{name} = {_hcl_scalar(item)}")
    return "\n".join(line for line in lines if line)
