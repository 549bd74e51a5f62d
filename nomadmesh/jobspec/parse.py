"""`parse_hcl`: a whole HCL2 jobspec (job + variable + locals blocks) → Job dict."""
from __future__ import annotations

from typing import Any

from nomadmesh.jobspec import hcl
from nomadmesh.jobspec.decode import Decoder, type_name_of
from nomadmesh.jobspec.errors import JobspecError
from nomadmesh.jobspec.values import ConversionError, to_bool, to_int

_VARIABLE_ATTRS = {"type", "default", "description", "sensitive", "nullable"}


def parse_hcl(text: str, variables: dict[str, Any] | str | None = None) -> dict[str, Any]:
    """Parse an HCL2 jobspec into the API's Job dict (not canonicalized).

    `variables` overrides `variable` defaults: a dict (`-var name=value` flags: an undeclared name is
    an error, as in Nomad), or HCL var-file text (`name = value` lines, the form Nomad's
    /v1/jobs/parse takes in its `Variables` field: an undeclared name there is only Nomad's warning,
    so it is ignored).
    """
    body = hcl.parse(text)
    overrides = _overrides(variables)
    strict = isinstance(variables, dict)
    for name, attr in body.attrs.items():
        raise JobspecError(f'unsupported attribute "{name}" at the top level (expected a job block)',
                           attr.line, attr.column)
    jobs = [b for b in body.blocks if b.type == "job"]
    for block in body.blocks:
        if block.type not in ("job", "variable", "locals"):
            raise JobspecError(f'unsupported block "{block.type}" at the top level', block.line, block.column)
    if len(jobs) != 1:
        where = jobs[1] if len(jobs) > 1 else None
        raise JobspecError(f"a jobspec needs exactly one job block, found {len(jobs)}",
                           where.line if where else None, where.column if where else None)

    scope = _Scope(text, body, overrides, strict)
    return Decoder(scope.evaluator).job(jobs[0])


def _overrides(variables: dict[str, Any] | str | None) -> dict[str, Any]:
    if variables is None:
        return {}
    if isinstance(variables, dict):
        return dict(variables)
    body = hcl.parse(variables)
    if body.blocks:
        b = body.blocks[0]
        raise JobspecError(f'unexpected block "{b.type}" in variable values', b.line, b.column)
    ev = hcl.Evaluator(variables, {}, _no_locals)
    return {name: ev.value(attr.expr) for name, attr in body.attrs.items()}


def _no_locals(name: str, line: int, column: int) -> Any:
    raise JobspecError("local values cannot be used here", line, column)


class _Scope:
    """var.* and local.* for one jobspec; locals are evaluated on first use, cycles are errors."""

    def __init__(self, text: str, body: hcl.Body, overrides: dict[str, Any], strict: bool = True):
        self.evaluator = hcl.Evaluator(text, {}, self._local)
        self.locals: dict[str, hcl.Attr] = {}
        self.values: dict[str, Any] = {}
        self.resolving: set[str] = set()
        declared: dict[str, Any] = {}
        for block in body.blocks:
            if block.type == "variable":
                name, value = self._variable(text, block, overrides)
                if name in declared:
                    raise JobspecError(f'variable "{name}" is declared twice', block.line, block.column)
                declared[name] = value
            elif block.type == "locals":
                if block.labels or block.body.blocks:
                    raise JobspecError("a locals block takes no label and holds only attributes",
                                       block.line, block.column)
                for name, attr in block.body.attrs.items():
                    if name in self.locals:
                        raise JobspecError(f'local value "{name}" is defined twice', attr.line, attr.column)
                    self.locals[name] = attr
        for name in overrides:
            if name not in declared and strict:  # Nomad's jobspec2 words for a -var it does not know
                raise JobspecError(f'Undefined -var variable; A "{name}" variable was passed in the command line '
                                   f'but was not found in known variables. To declare variable "{name}", '
                                   'place this block in your job files')
        self.evaluator.variables = declared

    def _variable(self, text: str, block: hcl.Block, overrides: dict[str, Any]) -> tuple[str, Any]:
        if len(block.labels) != 1:
            raise JobspecError('a variable block needs one label: variable "<name>" { ... }', block.line,
                               block.column)
        name = block.labels[0]
        for child in block.body.blocks:
            raise JobspecError(f'unsupported block "{child.type}" in variable "{name}"', child.line, child.column)
        for attr_name, attr in block.body.attrs.items():
            if attr_name not in _VARIABLE_ATTRS:
                raise JobspecError(f'unsupported attribute "{attr_name}" in variable "{name}"', attr.line,
                                   attr.column)
        type_attr = block.body.attrs.get("type")
        type_name = type_name_of(text, type_attr.expr) if type_attr else "any"
        if name in overrides:
            value = overrides[name]
        elif "default" in block.body.attrs:
            value = hcl.Evaluator(text, {}, _no_locals).value(block.body.attrs["default"].expr)
        else:
            raise JobspecError(f'Unset variable "{name}"; A used variable must be set or have a default value; '
                               'see https://developer.hashicorp.com/nomad/docs/reference/hcl2/variables for details.',
                               block.line, block.column)
        try:
            return name, _typed(value, type_name)
        except ConversionError as exc:
            raise JobspecError(f'variable "{name}" ({type_name}): {exc}', block.line, block.column) from None

    def _local(self, name: str, line: int, column: int) -> Any:
        if name in self.values:
            return self.values[name]
        attr = self.locals.get(name)
        if attr is None:
            raise JobspecError(f'reference to undeclared local value "local.{name}"', line, column)
        if name in self.resolving:
            raise JobspecError(f'local value "{name}" refers to itself', attr.line, attr.column)
        self.resolving.add(name)
        try:
            self.values[name] = self.evaluator.value(attr.expr)
        finally:
            self.resolving.discard(name)
        return self.values[name]


def _typed(value: Any, type_name: str) -> Any:
    """Convert a (possibly string, from the command line) value to the variable's declared type."""
    if type_name == "number":
        try:
            return to_int(value)
        except ConversionError:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return value
            try:
                return float(value)
            except (TypeError, ValueError):
                raise ConversionError(f"expected a number, got {value!r}") from None
    if type_name == "bool":
        return to_bool(value)
    if type_name == "string" and isinstance(value, (dict, list)):
        raise ConversionError("expected a string")
    return value
