"""Nomad's search API (nomad/search_endpoint.go), over what the dev agent holds. Pure.

Prefix search (`/v1/search`) lists the IDs starting with a prefix in each context, at most 20 per
context (then `Truncations[ctx]` is true); fuzzy search (`/v1/search/fuzzy`) lists the names that
contain the text, case-insensitively, each with its scope (namespace, job, group...), best first:
the earlier the text occurs, then the shorter the name. A job also matches by its groups, tasks,
services and (exec/raw_exec) commands. CSI plugins and volumes, host volumes, node pools and
scaling policies: the dev agent has none, so those contexts are always empty.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

TRUNCATE_LIMIT = 20  # Nomad's truncateLimit
MIN_TERM_LENGTH = 2  # Nomad's search.min_term_length default
PREFIX_CONTEXTS = ("allocs", "deployment", "evals", "jobs", "nodes", "node_pools", "namespaces", "plugins",
                   "scaling_policy", "vars", "volumes", "host_volumes")
FUZZY_CONTEXTS = ("jobs", "allocs", "nodes", "namespaces", "plugins", "vars")


class SearchError(Exception):
    """Refused as Nomad refuses it (500 with this text)."""


@dataclass(frozen=True)
class Holdings:
    """What a search looks through: documents of the request's namespace (nodes and namespaces: all)."""
    jobs: list[dict[str, Any]]
    allocs: list[dict[str, Any]]
    evals: list[dict[str, Any]]
    deployments: list[dict[str, Any]]
    nodes: list[dict[str, Any]]
    namespaces: list[dict[str, Any]]
    variables: list[dict[str, Any]]


def _contexts(context: str, known: tuple[str, ...]) -> tuple[str, ...]:
    if context == "all":
        return known
    if context not in known:
        raise SearchError(f"context must be one of [{' '.join(known)}] or 'all' for all contexts; got {context!r}")
    return (context,)


def prefix_search(held: Holdings, prefix: str, context: str) -> tuple[dict[str, list[str]], dict[str, bool]]:
    """(Matches, Truncations) of Nomad's PrefixSearch."""
    ids: dict[str, Iterable[str]] = {
        "allocs": (a["ID"] for a in held.allocs), "deployment": (d["ID"] for d in held.deployments),
        "evals": (e["ID"] for e in held.evals), "jobs": (j["ID"] for j in held.jobs),
        "nodes": (n["ID"] for n in held.nodes), "namespaces": (n["Name"] for n in held.namespaces),
        "vars": (v["Path"] for v in held.variables)}
    matches: dict[str, list[str]] = {}
    truncations: dict[str, bool] = {}
    for ctx in _contexts(context, PREFIX_CONTEXTS):
        found = sorted(i for i in ids.get(ctx, ()) if i.startswith(prefix))
        matches[ctx], truncations[ctx] = found[:TRUNCATE_LIMIT], len(found) > TRUNCATE_LIMIT
    return matches, truncations


def _job_matches(job: dict[str, Any], text: str) -> dict[str, list[tuple[int, str, list[str]]]]:
    """Nomad's fuzzyMatchesJob: the job's name, groups, tasks, services and commands."""
    ns, jid = job.get("Namespace") or "default", job["ID"]
    out: dict[str, list[tuple[int, str, list[str]]]] = {}

    def add(ctx: str, name: str, *scope: str) -> None:
        at = name.lower().find(text)
        if name and at >= 0:
            out.setdefault(ctx, []).append((at, name, [ns, *scope]))

    add("jobs", job.get("Name") or jid, jid)
    for group in job.get("TaskGroups") or []:
        add("groups", group["Name"], jid)
        for service in group.get("Services") or []:
            add("services", service.get("Name") or "", jid, group["Name"])
        for task in group.get("Tasks") or []:
            add("tasks", task["Name"], jid, group["Name"])
            for service in task.get("Services") or []:
                add("services", service.get("Name") or "", jid, group["Name"], task["Name"])
            if task.get("Driver") in ("exec", "raw_exec"):
                add("commands", str((task.get("Config") or {}).get("command") or ""), jid, group["Name"], task["Name"])
    return out


def fuzzy_search(held: Holdings, text: str, context: str) -> tuple[dict[str, list[dict[str, Any]]], dict[str, bool]]:
    """(Matches, Truncations) of Nomad's FuzzySearch."""
    if len(text) < MIN_TERM_LENGTH:
        raise SearchError(f"fuzzy search query must be at least {MIN_TERM_LENGTH} characters, got {len(text)}")
    text = text.lower()
    found: dict[str, list[tuple[int, str, list[str]]]] = {}
    for ctx in _contexts(context, FUZZY_CONTEXTS):
        if ctx == "jobs":
            for job in held.jobs:
                for sub, hits in _job_matches(job, text).items():
                    found.setdefault(sub, []).extend(hits)
            continue
        named: Iterable[tuple[str, list[str]]] = {
            "allocs": ((a["Name"], [a.get("Namespace") or "default", a["ID"]]) for a in held.allocs),
            "nodes": ((n["Name"], [n["ID"]]) for n in held.nodes),
            "namespaces": ((n["Name"], []) for n in held.namespaces),
            "vars": ((v["Path"], [v.get("Namespace") or "default", v["Path"]]) for v in held.variables),
        }.get(ctx, ())
        found.setdefault(ctx, [])
        for name, scope in named:
            at = name.lower().find(text)
            if at >= 0:
                found[ctx].append((at, name, scope))
    matches: dict[str, list[dict[str, Any]]] = {}
    truncations: dict[str, bool] = {}
    for ctx, hits in found.items():
        hits.sort(key=lambda h: (h[0], len(h[1]), h[1]))
        matches[ctx] = [{"ID": name, "Scope": scope or None} for _, name, scope in hits[:TRUNCATE_LIMIT]]
        truncations[ctx] = len(hits) > TRUNCATE_LIMIT
    return matches, truncations
