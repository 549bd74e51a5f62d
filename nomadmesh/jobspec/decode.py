"""HCL jobspec → the API's Job dict (Go field names, durations in ns), driven by schema.OBJECTS.

Everything in the file must be understood: an attribute or block we do not know or do not
implement is an error that names it and where it is, never silently dropped.
Unset fields are left out here; `canonicalize` fills them in.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from nomadmesh.jobspec import hcl
from nomadmesh.jobspec.errors import JobspecError
from nomadmesh.jobspec.schema import by_hcl
from nomadmesh.jobspec.values import CONVERTERS, ConversionError

_BLOCK_KINDS = {"obj", "objs", "omap", "hdr"}
_EITHER_KINDS = {"smap", "any"}

# Block labels that name the object (`job "x"`, `group "x"`, `task "x"`).
_LABELLED = {"Job": "ID", "TaskGroup": "Name", "Task": "Name", "Port": "Label", "VolumeRequest": "Name"}
# What an object is called in error messages.
_WHAT = {"TaskGroup": "group", "Task": "task", "Job": "job", "Service": "service", "Check": "check",
         "Connect": "connect", "SidecarService": "sidecar_service", "SidecarTask": "sidecar_task",
         "Proxy": "proxy", "Upstream": "upstreams", "Network": "network", "Port": "port"}

_CONSTRAINT_OPERATORS = ("regexp", "version", "semver", "set_contains", "set_contains_any",
                         "set_contains_all")


class Decoder:
    def __init__(self, ev: hcl.Evaluator):
        self.ev = ev

    # ---------------------------------------------------------------------------------------
    def job(self, block: hcl.Block) -> dict[str, Any]:
        if len(block.labels) != 1:
            raise JobspecError('a job block needs exactly one label: job "<name>" { ... }',
                               block.line, block.column)
        job = self.object("Job", block, f'job "{block.labels[0]}"')
        job.setdefault("Name", job["ID"])
        return job

    def object(self, obj: str, block: hcl.Block, where: str) -> dict[str, Any]:
        """Decode one block's body into an object of schema type `obj`."""
        out: dict[str, Any] = {}
        label_field = _LABELLED.get(obj)
        if label_field is not None:
            if len(block.labels) != 1:
                raise JobspecError(f'{block.type} block needs exactly one label, in {where}', block.line,
                                   block.column)
            out[label_field] = block.labels[0]
        elif block.labels:
            raise JobspecError(f'block "{block.type}" takes no label, in {where}', block.line, block.column)

        special = _SPECIAL.get(obj)
        handled: set[str] = special(self, block.body, out, where) if special else set()
        spec = by_hcl(obj)

        for name, attr in block.body.attrs.items():
            if name in handled:
                continue
            field = spec.get(name)
            if field is None or field.kind in _BLOCK_KINDS or field.kind == "unsupported":
                raise JobspecError(f'unsupported attribute "{name}" in {where}', attr.line, attr.column)
            out[field.api] = self.convert(field.kind, self.ev.value(attr.expr), name, where, attr)

        for child in block.body.blocks:
            if child.type in handled:
                continue
            field = spec.get(child.type)
            if field is None or field.kind == "unsupported" or field.kind not in _BLOCK_KINDS | _EITHER_KINDS:
                raise JobspecError(f'unsupported block "{child.type}" in {where}', child.line, child.column)
            if field.api in out and field.kind not in ("objs", "omap"):
                raise JobspecError(f'only one "{child.type}" is allowed in {where}', child.line, child.column)
            inner_where = self._where(field.obj or "", child, where)
            if field.kind == "obj":
                out[field.api] = self.object(field.obj or "", child, inner_where)
            elif field.kind == "objs":
                out.setdefault(field.api, []).append(self.object(field.obj or "", child, inner_where))
            elif field.kind == "omap":
                item = self.object(field.obj or "", child, inner_where)
                if item["Name"] in out.setdefault(field.api, {}):
                    raise JobspecError(f'{child.type} "{item["Name"]}" is defined twice in {where}', child.line,
                                       child.column)
                out[field.api][item["Name"]] = item
            elif field.kind == "any":
                self._no_labels(child, where)
                out[field.api] = self.free_form(child.body, inner_where)
            else:  # smap / hdr written as a block of attributes
                self._no_labels(child, where)
                if child.body.blocks:
                    b = child.body.blocks[0]
                    raise JobspecError(f'unexpected block "{b.type}" in {inner_where}', b.line, b.column)
                raw = {k: self.ev.value(a.expr) for k, a in child.body.attrs.items()}
                out[field.api] = self.convert(field.kind, raw, child.type, where, child)
        return out

    def _where(self, obj: str, block: hcl.Block, parent: str) -> str:
        name = _WHAT.get(obj, block.type)
        label = f' "{block.labels[0]}"' if block.labels else ""
        return f"{parent} {name}{label}" if parent else f"{name}{label}"

    @staticmethod
    def _no_labels(block: hcl.Block, where: str) -> None:
        if block.labels:
            raise JobspecError(f'block "{block.type}" takes no label, in {where}', block.line, block.column)

    def convert(self, kind: str, value: Any, name: str, where: str, node: Any) -> Any:
        if kind == "any":
            if not isinstance(value, dict):
                raise JobspecError(f'"{name}" in {where} must be a map', node.line, node.column)
            return value
        try:
            return CONVERTERS[kind](value)
        except ConversionError as exc:
            raise JobspecError(f'"{name}" in {where}: {exc}', node.line, node.column) from None

    def free_form(self, body: hcl.Body, where: str) -> dict[str, Any]:
        """A driver `config` or proxy `config`: any attributes; nested blocks become lists of maps."""
        out: dict[str, Any] = {k: self.ev.value(a.expr) for k, a in body.attrs.items()}
        for child in body.blocks:
            self._no_labels(child, where)
            existing = out.setdefault(child.type, [])
            if not isinstance(existing, list):
                raise JobspecError(f'"{child.type}" is both an attribute and a block in {where}', child.line,
                                   child.column)
            existing.append(self.free_form(child.body, f"{where} {child.type}"))
        return out


# ------------------------------------------------------------------------------------------
# Syntax that does not map field-for-field onto the API; each returns the names it handled.


def _network(dec: Decoder, body: hcl.Body, out: dict[str, Any], where: str) -> set[str]:
    # `port "http" { static = 8080 }` is a reserved port; without static it is dynamic (Nomad's
    # jobspec2 moves ports with a value into ReservedPorts the same way).
    labels: set[str] = set()
    for child in body.blocks:
        if child.type != "port":
            continue
        port = dec.object("Port", child, f'{where} port "{child.labels[0] if child.labels else ""}"')
        if port["Label"] in labels:
            raise JobspecError(f'port label "{port["Label"]}" is defined twice in {where}', child.line,
                               child.column)
        labels.add(port["Label"])
        port.setdefault("Value", 0)
        port.setdefault("To", 0)
        port.setdefault("HostNetwork", "")
        port = {"Label": port["Label"], "Value": port["Value"], "To": port["To"],
                "HostNetwork": port["HostNetwork"]}
        key = "ReservedPorts" if port["Value"] else "DynamicPorts"
        out.setdefault(key, []).append(port)
    return {"port"}


def _operator_attrs(dec: Decoder, body: hcl.Body, out: dict[str, Any], where: str) -> set[str]:
    """`<operator> = value` (e.g. `regexp = "..."`), which a constraint and an affinity both take:
    the operator is the Operand and the value the RTarget."""
    handled: set[str] = set()
    for op in _CONSTRAINT_OPERATORS:
        if op in body.attrs:
            attr = body.attrs[op]
            out["Operand"] = op
            out["RTarget"] = dec.convert("str", dec.ev.value(attr.expr), op, where, attr)
            handled.add(op)
    return handled


def _default_operand(body: hcl.Body, out: dict[str, Any]) -> None:
    if "operator" not in body.attrs and "Operand" not in out:
        out["Operand"] = "="


def _constraint(dec: Decoder, body: hcl.Body, out: dict[str, Any], where: str) -> set[str]:
    handled = _operator_attrs(dec, body, out, where)
    if "distinct_hosts" in body.attrs:
        attr = body.attrs["distinct_hosts"]
        if dec.convert("bool", dec.ev.value(attr.expr), "distinct_hosts", where, attr):
            out["Operand"] = "distinct_hosts"
        handled.add("distinct_hosts")
    if "distinct_property" in body.attrs:
        attr = body.attrs["distinct_property"]
        out["Operand"] = "distinct_property"
        out["LTarget"] = dec.convert("str", dec.ev.value(attr.expr), "distinct_property", where, attr)
        handled.add("distinct_property")
    _default_operand(body, out)
    return handled


def _affinity(dec: Decoder, body: hcl.Body, out: dict[str, Any], where: str) -> set[str]:
    """An affinity takes the constraint's operator attributes (`regexp = ...`), not distinct_*."""
    handled = _operator_attrs(dec, body, out, where)
    _default_operand(body, out)
    return handled


_SPECIAL: dict[str, Callable[[Decoder, hcl.Body, dict[str, Any], str], set[str]]] = {
    "Network": _network,
    "Constraint": _constraint,
    "Affinity": _affinity,
}


def type_name_of(source: str, expr: Any) -> str:
    """The text of a variable's `type = ...` expression (string, number, bool, list(string) …)."""
    text = hcl.source_text(source, expr)
    if text is None:
        return "any"
    return re.sub(r"\s+", "", text)
