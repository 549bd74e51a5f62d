"""Template variables: declared in nomadmesh.json, given values by an env file, the environment and
`--var`, read by templates as `v.vars.<name>`. Pure: documents and mappings in, values and problems out.

    "variables": {"image_tag": {"type": "string", "default": "latest", "description": "...", "required": false}}

Precedence, lowest first: the declaration's default < the env file's "variables" < NOMADMESH_VAR_<name>
< `--var name=value`. Values from the environment and the command line are text, converted to the
declared type; values from JSON files must already have it.
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nomadmesh.errors import Problem

ENV_PREFIX = "NOMADMESH_VAR_"
TYPES = ("string", "number", "bool")
DECLARATION_KEYS = ("type", "default", "description", "required")
Value = str | int | float | bool


@dataclass(frozen=True)
class Variable:
    """One declared template variable."""

    name: str
    type: str = "string"
    default: Value | None = None
    description: str = ""
    required: bool = False


def _is_word(name: str) -> bool:
    # Usable as `v.vars.<name>` in a template and as part of an environment variable name.
    return bool(name) and name.isascii() and (name[0].isalpha() or name[0] == "_") and \
        all(c.isalnum() or c == "_" for c in name)


def _typed(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


def _from_text(text: str, kind: str) -> Value:
    """Text from the environment or `--var` → the declared type, or ValueError saying why not."""
    if kind == "bool":
        if text in ("true", "false"):
            return text == "true"
        raise ValueError(f"{text!r} is not a bool: true or false")
    if kind == "number":
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"{text!r} is not a number")
        return number
    return text


def parse_declarations(raw: Any, label: str, at: str = "variables") -> tuple[tuple[Variable, ...], list[Problem]]:
    """nomadmesh.json's "variables" object → declarations."""
    if not isinstance(raw, dict):
        return (), [Problem(label, at, "must be a JSON object of name: {type, default, description, required}")]
    found: list[Variable] = []
    problems: list[Problem] = []
    for name, decl in raw.items():
        where = f"{at}.{name}"
        if not _is_word(name):
            problems.append(Problem(label, where, f"{name!r} is not a variable name: letters, digits and '_'"))
            continue
        if not isinstance(decl, dict):
            problems.append(Problem(label, where, "must be a JSON object: {type, default, description, required}"))
            continue
        problems += [Problem(label, f"{where}.{key}", f"unknown key; expected one of: {', '.join(DECLARATION_KEYS)}")
                     for key in decl if key not in DECLARATION_KEYS]
        kind = decl.get("type", "string")
        if kind not in TYPES:
            problems.append(Problem(label, f"{where}.type", f"must be one of: {', '.join(TYPES)}"))
            continue
        default = decl.get("default")
        if default is not None and not _typed(default, kind):
            problems.append(Problem(label, f"{where}.default", f"must be a {kind}, like the variable's type"))
            continue
        description, required = decl.get("description", ""), decl.get("required", False)
        if not isinstance(description, str):
            problems.append(Problem(label, f"{where}.description", "must be a string"))
        if not isinstance(required, bool):
            problems.append(Problem(label, f"{where}.required", "must be true or false"))
        found.append(Variable(name, kind, default, description if isinstance(description, str) else "",
                              required is True))
    return tuple(found), problems


def _unknown(name: str, declared: Mapping[str, Variable]) -> str:
    # A name that differs only in case first (NOMADMESH_VAR_TAG for `tag`: names are case-sensitive).
    same = [d for d in declared if d.lower() == name.lower()]
    close = same or difflib.get_close_matches(name, list(declared), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    known = f" (declared: {', '.join(sorted(declared))})" if declared else " (nomadmesh.json declares none)"
    return f"no such variable{hint}{known}"


def resolve(
    declared: Sequence[Variable],
    project_label: str,
    env_values: Mapping[str, Any] | None = None,
    env_label: str = "",
    environ: Mapping[str, str] | None = None,
    assignments: Sequence[str] = (),
) -> tuple[dict[str, Value], list[Problem]]:
    """Every declared variable's value, lowest precedence first. Problems name where a bad value came from."""
    by_name = {v.name: v for v in declared}
    values: dict[str, Value] = {v.name: v.default for v in declared if v.default is not None}
    problems: list[Problem] = []
    for name, value in (env_values or {}).items():
        if name not in by_name:
            problems.append(Problem(env_label, f"variables.{name}", _unknown(name, by_name)))
        elif not _typed(value, by_name[name].type):
            problems.append(Problem(env_label, f"variables.{name}", f"must be a {by_name[name].type}"))
        else:
            values[name] = value
    for key, text in sorted((environ or {}).items()):
        name = key[len(ENV_PREFIX):]
        if not key.startswith(ENV_PREFIX) or not name:
            continue
        if name not in by_name:
            # Like TF_VAR_/NOMAD_VAR_, a stray environment variable is only a warning.
            problems.append(Problem(f"${key}", "", f"ignored: {_unknown(name, by_name)}", "warning"))
            continue
        try:
            values[name] = _from_text(text, by_name[name].type)
        except ValueError as e:
            problems.append(Problem(f"${key}", "", str(e)))
    for assignment in assignments:
        name, equals, text = assignment.partition("=")
        where = f"--var {assignment}"
        if not equals:
            problems.append(Problem(where, "", "expected NAME=VALUE"))
        elif name not in by_name:
            problems.append(Problem(where, "", _unknown(name, by_name)))
        else:
            try:
                values[name] = _from_text(text, by_name[name].type)
            except ValueError as e:
                problems.append(Problem(where, "", str(e)))
    for v in declared:
        if v.required and v.name not in values:
            problems.append(Problem(project_label, f"variables.{v.name}",
                                    f"is required and has no value: set it with --var {v.name}=..., "
                                    f"{ENV_PREFIX}{v.name} or an env file's \"variables\""))
    return values, problems
