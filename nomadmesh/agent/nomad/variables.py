"""Nomad Variables: Items (a string map) at a path in a namespace, stored as kind `variable`
under "<namespace>/<path>" in the agent's state (0600, persisted, like KV).

Nomad's rules (nomad/structs/variables.go, nomad/state/state_store_variables.go): a path is
1-128 of [a-zA-Z0-9-_~/]; under the top-level `nomad/` only `nomad/jobs[/...]`,
`nomad/sentinel[/...]` and `nomad/job-templates/<name>` may be written; Items are required and at
most 64 KiB (keys plus values). A check-and-set write or delete that finds another ModifyIndex
conflicts and answers the variable it found (a zero variable when there is none). A set whose
Items are unchanged writes nothing and keeps the ModifyIndex.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from nomadmesh.agent.state import Record, State

KIND = "variable"
VALID_PATH = re.compile(r"^[a-zA-Z0-9\-_~/]{1,128}$")
MAX_SIZE = 65536
WILDCARD = "*"


class VariableError(Exception):
    """Refused as Nomad refuses it; `status` is the HTTP status Nomad answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _invalid(message: str) -> VariableError:
    # Nomad wraps a validation error as an RPC-coded error twice and unwraps it once, so this
    # prefix reaches clients.
    return VariableError(400, f"RPC Error:: 400,{message}")


@dataclass(frozen=True)
class Outcome:
    """A write's answer: the variable written (or found, on a conflict) and the index."""
    variable: dict[str, Any] | None
    index: int
    conflict: bool = False


def key(namespace: str, path: str) -> str:
    return f"{namespace}/{path}"


def path_problem(path: str) -> str | None:
    """Nomad's ValidatePath, or None when the path may be written."""
    if not path:
        return "variable requires path"
    if not VALID_PATH.match(path):
        return f"invalid path {_go_quote(path)}"
    parts = path.split("/")
    if parts[0] != "nomad":
        return None
    if len(parts) == 1:
        return ('"nomad" is a reserved top-level directory path, but you may write variables to "nomad/jobs", '
                '"nomad/job-templates", "nomad/sentinel", or below')
    if parts[1] in ("jobs", "sentinel") or (parts[1] == "job-templates" and len(parts) == 3):
        return None
    if parts[1] == "job-templates":
        return ('"nomad/job-templates" is a reserved directory path, but you may write variables at the level '
                'below it, for example, "nomad/job-templates/template-name"')
    return ('only paths at "nomad/jobs" or "nomad/job-templates" and below are valid paths under the '
            'top-level "nomad" directory')


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def metadata(rec: Record) -> dict[str, Any]:
    """api.VariableMetadata, as the list endpoint answers it."""
    v = rec.value
    return {"Namespace": v["Namespace"], "Path": v["Path"], "CreateIndex": rec.create_index,
            "CreateTime": v["CreateTime"], "ModifyIndex": rec.modify_index, "ModifyTime": v["ModifyTime"]}


def variable(rec: Record) -> dict[str, Any]:
    """api.Variable: the metadata and its Items."""
    return {**metadata(rec), "Items": dict(rec.value["Items"])}


def _zero(namespace: str, path: str) -> dict[str, Any]:
    """What Nomad answers as the conflict when a CAS expected a variable that is not there."""
    return {"Namespace": namespace, "Path": path, "CreateIndex": 0, "CreateTime": 0, "ModifyIndex": 0,
            "ModifyTime": 0}


def listing(state: State, namespace: str, prefix: str) -> list[dict[str, Any]]:
    """Metadata of the variables whose path starts with `prefix`, in `namespace` (`*`: all)."""
    if namespace == WILDCARD:
        return [metadata(r) for r in state.records(KIND) if r.value["Path"].startswith(prefix)]
    return [metadata(r) for r in state.records(KIND, key(namespace, prefix))]


def read(state: State, namespace: str, path: str) -> dict[str, Any] | None:
    rec = state.get(KIND, key(namespace, path))
    return variable(rec) if rec is not None else None


def _check(namespace: str, path: str, items: dict[str, str]) -> None:
    """Nomad's VariableDecrypted.Validate."""
    if namespace == WILDCARD:
        raise _invalid('can not target wildcard ("*")namespace')
    if sum(len(k) + len(v) for k, v in items.items()) > MAX_SIZE:
        raise _invalid("variables are limited to 64KiB in total size")
    problem = path_problem(path)
    if problem:
        raise _invalid(problem)


def put(state: State, namespace: str, path: str, items: dict[str, str], cas: int | None) -> Outcome:
    """Set (or check-and-set) the variable's Items."""
    _check(namespace, path, items)
    with state.write() as txn:
        current = txn.get(KIND, key(namespace, path))
        if cas is not None:
            if current is None and cas != 0:
                return Outcome(_zero(namespace, path), 0, conflict=True)
            if current is not None and current.modify_index != cas:
                return Outcome(variable(current), current.modify_index, conflict=True)
        if current is not None and current.value["Items"] == items:
            return Outcome(variable(current), txn.index - 1)  # unchanged: nothing written
        now = time.time_ns()
        created = current.value["CreateTime"] if current is not None else now
        rec = txn.put(KIND, key(namespace, path), {"Namespace": namespace, "Path": path, "Items": items,
                                                   "CreateTime": created, "ModifyTime": now})
        return Outcome(variable(rec), txn.index)


def delete(state: State, namespace: str, path: str, cas: int | None) -> Outcome:
    """Delete (or check-and-delete); deleting a missing variable without `cas` succeeds."""
    with state.write() as txn:
        current = txn.get(KIND, key(namespace, path))
        if cas is not None:
            if current is None and cas != 0:
                return Outcome(_zero(namespace, path), 0, conflict=True)
            if current is not None and current.modify_index != cas:
                return Outcome(variable(current), current.modify_index, conflict=True)
        if current is not None:
            txn.delete(KIND, key(namespace, path))
            return Outcome(None, txn.index)
        return Outcome(None, txn.index - 1)
