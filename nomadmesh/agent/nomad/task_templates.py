"""A task's `template` blocks on the dev agent, as Nomad's template hook runs them.

At registration, `refusal(job)` names the first embedded template the agent cannot render
(a consul-template function or action outside runtime/template_syntax's subset): the register is
refused with 400 rather than stored and rendered wrong. Syntax errors are not refused there:
Nomad accepts them too and fails the task when it renders ("Template failed: ...").

Before a task starts, `TaskTemplates.first_render` renders every template (blocking the task, as
Nomad does, until each `key` it reads exists), writes the files with their `perms`, and returns
the variables of `env = true` templates, which override the task's env. `rerender` re-renders
after a KV or catalog change and returns the template blocks whose file changed (the runner
applies their change_mode).

Templates are parsed and rendered by the runtime's pure modules (the one place in nomad/ besides
platform.py that imports the runtime: both modules are pure functions over strings and files).
"""
from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nomadmesh.agent.nomad import variables
from nomadmesh.agent.runtime import template_syntax as syntax, templates as rt
from nomadmesh.agent.state import State

KV_KIND = "kv"
DEPENDENCY_KINDS = (KV_KIND, variables.KIND)  # what a missing `key` or `nomadVar` waits for
# KV and variables, and the catalog and its health for `range service` / `range connect`
WATCHED_KINDS = (*DEPENDENCY_KINDS, "service", "check")
MISSING_EVENT = "Template"  # Nomad's consulTemplateSourceName
TemplateError = rt.TemplateError
ServiceLookup = rt.ServiceLookup


def refusal(job: dict[str, Any]) -> str | None:
    """Why the dev agent refuses `job`'s templates (Nomad's validation-error shape), or None."""
    for group in job.get("TaskGroups") or []:
        for task in group.get("Tasks") or []:
            for i, block in enumerate(task.get("Templates") or [], 1):
                data = block.get("EmbeddedTmpl") or ""
                if not data:
                    continue  # a `source` file exists only in the allocation: checked when rendered
                try:
                    syntax.parse(data, block.get("LeftDelim") or "", block.get("RightDelim") or "")
                except syntax.Unsupported as e:
                    return (f"Task group {group['Name']} validation failed: Task {task['Name']} validation failed: "
                            f"Template {i} validation failed: {e}")
                except syntax.TemplateSyntaxError:
                    pass  # Nomad registers it and fails the task at render time; so does the agent
    return None


@dataclass(frozen=True)
class CatalogLookups:
    """consul-template's `service` and `connect` queries over the agent's own catalog."""
    service: ServiceLookup
    connect: ServiceLookup


def catalog_lookups(health: Callable[[str, bool], list[dict[str, Any]]]) -> CatalogLookups:
    """`service "name"` (or "tag.name") and `connect "name"` over `health(name, connect)`, Consul's
    passing health entries of the service (or of its Connect-capable instances)."""
    return CatalogLookups(
        lambda wanted: rt.health_instances(health(rt.service_name(wanted), False), wanted),
        lambda wanted: rt.health_instances(health(rt.service_name(wanted), True), wanted))


def _text(raw: str | None) -> str:
    return base64.b64decode(raw).decode("utf-8", "replace") if raw else ""


def kv_lookup(state: State) -> Callable[[str], str | None]:
    """consul-template's view of a KV key: its value as text, None while it does not exist."""
    def key(path: str) -> str | None:
        rec = state.get(KV_KIND, path)
        return None if rec is None else _text(rec.value.get("Value"))
    return key


def kv_list(state: State) -> Callable[[str], list[dict[str, Any]]]:
    """consul-template's kv.list: every key starting with the prefix as a KeyPair (Key: the rest of
    the path, leading '/' trimmed)."""
    def pairs(prefix: str) -> list[dict[str, Any]]:
        return [{"Path": r.key, "Key": r.key[len(prefix):].lstrip("/"), "Value": _text(r.value.get("Value")),
                 "CreateIndex": r.create_index, "ModifyIndex": r.modify_index,
                 "LockIndex": r.value.get("LockIndex", 0), "Flags": r.value.get("Flags", 0),
                 "Session": r.value.get("Session", "")} for r in state.records(KV_KIND, prefix)]
    return pairs


def variable_lookup(state: State, namespace: str) -> Callable[[str], dict[str, str] | None]:
    """consul-template's nomad.var.get in the task's namespace: the items, None while there is none."""
    def items(path: str) -> dict[str, str] | None:
        found = variables.read(state, namespace, path)
        return None if found is None else dict(found.get("Items") or {})
    return items


def sources(state: State, env: Mapping[str, str], catalog: CatalogLookups | None) -> rt.Sources:
    """Everything a task's templates may read, from the agent's state and catalog."""
    namespace = env.get("NOMAD_NAMESPACE") or "default"
    src = rt.Sources(kv_lookup(state), kv_list=kv_list(state), variable=variable_lookup(state, namespace),
                     namespace=namespace)
    return src if catalog is None else dataclasses.replace(src, service=catalog.service, connect=catalog.connect)


@dataclass
class _Prepared:
    block: dict[str, Any]
    dest: str
    mode: int
    nodes: list[syntax.Node]


class TaskTemplates:
    """One task's templates, resolved against its directories (`interpolate` expands ${NOMAD_...})."""

    def __init__(self, task: dict[str, Any], alloc_dir: str, interpolate: Callable[[str], str]):
        self.task = task
        self.alloc_dir = alloc_dir
        self.task_dir = os.path.join(alloc_dir, task["Name"])
        self.interpolate = interpolate
        self._prepared: list[_Prepared] = []

    def __bool__(self) -> bool:
        return bool(self.task.get("Templates"))

    def _prepare(self) -> list[_Prepared]:
        if self._prepared:
            return self._prepared
        out = []
        for block in self.task.get("Templates") or []:
            dest, escapes = rt.client_path(self.interpolate(block.get("DestPath") or ""), self.task_dir,
                                           self.alloc_dir, join_escape=True)
            if escapes:
                raise TemplateError(rt.DEST_ESCAPES)
            text = block.get("EmbeddedTmpl") or ""
            if block.get("SourcePath"):
                src, escapes = rt.client_path(self.interpolate(block["SourcePath"]), self.task_dir,
                                              self.alloc_dir, join_escape=False)
                if escapes or rt.escapes_via_symlink(src, self.alloc_dir):
                    raise TemplateError(rt.SOURCE_ESCAPES)
                try:
                    with open(src, encoding="utf-8") as f:
                        text = f.read()
                except OSError as e:
                    raise TemplateError(f"failed to read template {src!r}: {e.strerror}") from None
            try:
                nodes = syntax.parse(text, block.get("LeftDelim") or "", block.get("RightDelim") or "")
            except (syntax.TemplateSyntaxError, syntax.Unsupported) as e:
                raise TemplateError(f"parse: {e}") from None
            out.append(_Prepared(block, dest, rt.parse_perms(block.get("Perms") or "0644"), nodes))
        self._prepared = out
        return out

    def watched(self) -> bool:
        """Whether a render can change: the templates read KV keys, list them, read variables or
        range over services."""
        return any(syntax.keys(p.nodes) or any(isinstance(n, syntax.Block) for n in p.nodes)
                   for p in self._prepare())

    def _render(self, src: rt.Sources, env: Mapping[str, str],
                watched_only: bool = False) -> tuple[list[_Prepared], list[str]]:
        """Write every template whose render changed; (the changed ones, missing dependencies)."""
        renders = [(p, rt.render(p.nodes, src, env)) for p in self._prepare()
                   if not (watched_only and p.block.get("Once"))]
        missing = sorted({m for _, r in renders for m in r.missing})
        if missing:
            return [], missing  # consul-template writes nothing until every dependency is there
        changed = [p for p, r in renders
                   if rt.write(p.dest, r.text, p.mode, p.block.get("Uid"), p.block.get("Gid"), self.alloc_dir)]
        return changed, []

    def first_render(self, state: State, env: Mapping[str, str], stopping: Callable[[], bool],
                     on_missing: Callable[[str], None], catalog: CatalogLookups | None = None,
                     poll_s: float = 1.0) -> dict[str, str] | None:
        """Render before the task starts, waiting for missing keys and variables; the `env = true`
        variables, or None when the allocation stopped while waiting. TemplateError when rendering fails."""
        src = sources(state, env, catalog)
        told: list[str] = []
        while True:
            index = state.kind_index(*DEPENDENCY_KINDS)
            _, missing = self._render(src, env)
            if not missing:
                return self.env_vars()
            if missing != told:
                told = missing
                on_missing(f"Missing: {', '.join(missing)}")
            while not stopping() and state.kind_index(*DEPENDENCY_KINDS) == index:
                state.wait(DEPENDENCY_KINDS, index, poll_s)
            if stopping():
                return None

    def rerender(self, state: State, env: Mapping[str, str],
                 catalog: CatalogLookups | None = None) -> list[dict[str, Any]]:
        """After a change of what they read: the template blocks whose file changed (still-missing
        dependencies: none). A template with `once = true` keeps its first render, as in Nomad."""
        changed, _ = self._render(sources(state, env, catalog), env, watched_only=True)
        return [p.block for p in changed]

    def env_vars(self) -> dict[str, str]:
        """Nomad's loadTemplateEnv: every `env = true` template's file, later ones winning."""
        out: dict[str, str] = {}
        for p in self._prepare():
            if not p.block.get("Envvars"):
                continue
            try:
                with open(p.dest, encoding="utf-8") as f:
                    out.update(rt.parse_env(f.read()))
            except TemplateError as e:
                raise TemplateError(f"error parsing env template {p.dest!r}: {e}") from None
        return out
