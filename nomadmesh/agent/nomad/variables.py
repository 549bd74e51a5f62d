"""Nomad Variables: Items (a string map) at a path in a namespace, stored as kind `variable`
under "<namespace>/<path>" in the agent's state (0600, persisted, like KV).

Nomad's rules (nomad/structs/variables.go, nomad/state/state_store_variables.go): a path is
1-128 of [a-zA-Z0-9-_~/]; under the top-level `nomad/` only `nomad/jobs[/...]`,
`nomad/sentinel[/...]` and `nomad/job-templates/<name>` may be written; Items are required and at
most 64 KiB (keys plus values). A check-and-set write or delete that finds another ModifyIndex
conflicts and answers the variable it found (a zero variable when there is none). A set whose
Items are unchanged writes nothing and keeps the ModifyIndex.

Locks (Nomad 1.7+): acquiring puts a Lock {ID, TTL, LockDelay} on the variable; only its holder
may change, release or renew it. The time it lapses is kept beside it (kind `variable_lock`, so a
renew does not move the variable's ModifyIndex, as in Nomad, where renewing only resets a timer).
A lock not renewed within its TTL is lost: `expire` (run on a timer by the HTTP view) writes the
variable without it, and for LockDelay after that nobody may acquire it. Reads also treat a lapsed
lock as gone, which covers an agent restarted while a lock was held.
"""
from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from nomadmesh.agent.state import Record, State, Txn
from nomadmesh.durations import DurationError, go_duration, parse_ns
from nomadmesh.gotext import quote as go_quote

KIND = "variable"
VALID_PATH = re.compile(r"^[a-zA-Z0-9\-_~/]{1,128}$")
MAX_SIZE = 65536
WILDCARD = "*"
LOCK_KIND = "variable_lock"  # {"Expires": ns, "DelayUntil": ns} per locked (or just lost) variable
SECOND = 1_000_000_000
DEFAULT_TTL = DEFAULT_DELAY = 15 * SECOND
MIN_TTL, MAX_TTL = 10 * SECOND, 24 * 3600 * SECOND


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
        return f"invalid path {go_quote(path)}"
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



def _lock_json(lock: dict[str, Any]) -> dict[str, Any]:
    return {"ID": lock["ID"], "TTL": go_duration(lock["TTL"]), "LockDelay": go_duration(lock["LockDelay"])}


def metadata(rec: Record, lock: dict[str, Any] | None = None) -> dict[str, Any]:
    """api.VariableMetadata, as the list endpoint answers it (with the Lock while one is held)."""
    v = rec.value
    return {"Namespace": v["Namespace"], "Path": v["Path"], **({"Lock": _lock_json(lock)} if lock else {}),
            "CreateIndex": rec.create_index, "CreateTime": v["CreateTime"], "ModifyIndex": rec.modify_index,
            "ModifyTime": v["ModifyTime"]}


def variable(rec: Record, lock: dict[str, Any] | None = None) -> dict[str, Any]:
    """api.Variable: the metadata and its Items (none on a variable made only to hold a lock)."""
    items = rec.value["Items"]
    return {**metadata(rec, lock), **({"Items": dict(items)} if items else {})}


def _held(state: State | Txn, rec: Record, now: int) -> dict[str, Any] | None:
    """The variable's lock while it has not lapsed, else None."""
    lock = rec.value.get("Lock")
    if not lock:
        return None
    timing = state.get(LOCK_KIND, rec.key)
    return lock if timing is not None and now < timing.value["Expires"] else None


def _zero(namespace: str, path: str) -> dict[str, Any]:
    """What Nomad answers as the conflict when a CAS expected a variable that is not there."""
    return {"Namespace": namespace, "Path": path, "CreateIndex": 0, "CreateTime": 0, "ModifyIndex": 0,
            "ModifyTime": 0}


def listing(state: State, namespace: str, prefix: str) -> list[dict[str, Any]]:
    """Metadata of the variables whose path starts with `prefix`, in `namespace` (`*`: all)."""
    now = time.time_ns()
    if namespace == WILDCARD:
        records = [r for r in state.records(KIND) if r.value["Path"].startswith(prefix)]
    else:
        records = state.records(KIND, key(namespace, prefix))
    return [metadata(r, _held(state, r, now)) for r in records]


def read(state: State, namespace: str, path: str) -> dict[str, Any] | None:
    rec = state.get(KIND, key(namespace, path))
    return variable(rec, _held(state, rec, time.time_ns())) if rec is not None else None


def _check(namespace: str, path: str, items: dict[str, str]) -> None:
    """Nomad's VariableDecrypted.Validate (ValidateForLock, for a lock, takes no Items too)."""
    if namespace == WILDCARD:
        raise _invalid('can not target wildcard ("*")namespace')
    if sum(len(k) + len(v) for k, v in items.items()) > MAX_SIZE:
        raise _invalid("variables are limited to 64KiB in total size")
    problem = path_problem(path)
    if problem:
        raise _invalid(problem)


def put(state: State, namespace: str, path: str, items: dict[str, str], cas: int | None,
        lock_id: str = "") -> Outcome:
    """Set (or check-and-set) the variable's Items; a locked variable only by its holder (`lock_id`)."""
    _check(namespace, path, items)
    now = time.time_ns()
    with state.write() as txn:
        current = txn.get(KIND, key(namespace, path))
        held = _held(txn, current, now) if current is not None else None
        if held is not None and held["ID"] != lock_id:
            return Outcome(_zero(namespace, path), 0, conflict=True)
        if cas is not None:
            if current is None and cas != 0:
                return Outcome(_zero(namespace, path), 0, conflict=True)
            if current is not None and current.modify_index != cas:
                return Outcome(variable(current), current.modify_index, conflict=True)
        if current is not None and current.value["Items"] == items:
            return Outcome(variable(current, held), txn.index - 1)  # unchanged: nothing written
        now = time.time_ns()
        created = current.value["CreateTime"] if current is not None else now
        rec = txn.put(KIND, key(namespace, path), {"Namespace": namespace, "Path": path, "Items": items,
                                                   "CreateTime": created, "ModifyTime": now,
                                                   **({"Lock": held} if held else {})})
        return Outcome(variable(rec, held), txn.index)


def delete(state: State, namespace: str, path: str, cas: int | None) -> Outcome:
    """Delete (or check-and-delete); deleting a missing variable without `cas` succeeds."""
    with state.write() as txn:
        current = txn.get(KIND, key(namespace, path))
        if current is not None and _held(txn, current, time.time_ns()) is not None:
            return Outcome(_zero(namespace, path), 0, conflict=True)
        if cas is not None:
            if current is None and cas != 0:
                return Outcome(_zero(namespace, path), 0, conflict=True)
            if current is not None and current.modify_index != cas:
                return Outcome(variable(current), current.modify_index, conflict=True)
        if current is not None:
            txn.delete(KIND, key(namespace, path))
            txn.delete(LOCK_KIND, key(namespace, path))
            return Outcome(None, txn.index)
        return Outcome(None, txn.index - 1)


# --- locks ------------------------------------------------------------------------------------

def _duration(value: Any, default: int) -> int:
    """A lock's TTL or LockDelay as structs.VariableLock decodes it: a Go duration string or
    nanoseconds; empty or zero means the default."""
    if value in (None, "", 0):
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return parse_ns(value)
        except DurationError:
            pass
    raise VariableError(400, f"time: invalid duration {value!r}".replace("'", '"'))


def lock_from(body: dict[str, Any] | None) -> dict[str, Any]:
    """The request's Lock, canonical (Nomad's VariableLock.Canonicalize) and checked (Validate)."""
    body = body or {}
    if not isinstance(body, dict):
        raise VariableError(400, "Request decode failed: Lock must be an object")
    ttl, delay = _duration(body.get("TTL"), DEFAULT_TTL), _duration(body.get("LockDelay"), DEFAULT_DELAY)
    errors = []
    if ttl < 0 or delay < 0:
        errors.append("Lock delay and TTL must be positive")
    if not MIN_TTL <= ttl <= MAX_TTL:
        errors.append("TTL must be between 10 seconds and 24 hours")
    if errors:
        points = "\n\t".join(f"* {e}" for e in errors)
        raise _invalid(f"{len(errors)} error{'s' if len(errors) > 1 else ''} occurred:\n\t{points}\n\n")
    return {"ID": str(body.get("ID") or uuid.uuid4()), "TTL": ttl, "LockDelay": delay}


def acquire(state: State, namespace: str, path: str, items: dict[str, str], lock: dict[str, Any]) -> Outcome:
    """Put `lock` on the variable (made, with `items`, when missing): a conflict while another holds
    it or within the LockDelay after it lapsed. Like Nomad, the variable gets the request's Items."""
    _check(namespace, path, items)
    now = time.time_ns()
    with state.write() as txn:
        k = key(namespace, path)
        current, timing = txn.get(KIND, k), txn.get(LOCK_KIND, k)
        held = _held(txn, current, now) if current is not None else None
        delayed = timing is not None and held is None and now < timing.value["DelayUntil"]
        if (held is not None and held["ID"] != lock["ID"]) or delayed:
            return Outcome(_zero(namespace, path), 0, conflict=True)
        created = current.value["CreateTime"] if current is not None else now
        rec = txn.put(KIND, k, {"Namespace": namespace, "Path": path, "Items": items, "Lock": lock,
                                "CreateTime": created, "ModifyTime": now})
        txn.put(LOCK_KIND, k, {"Expires": now + lock["TTL"], "DelayUntil": now + lock["TTL"] + lock["LockDelay"]})
        return Outcome(variable(rec, lock), txn.index)


def _holder(txn: Txn, namespace: str, path: str, lock_id: str, now: int) -> Record:
    current = txn.get(KIND, key(namespace, path))
    if current is None:
        raise VariableError(404, "variable doesn't exist")
    held = _held(txn, current, now)
    if held is None:
        raise VariableError(409, "variable doesn't hold a lock")
    if held["ID"] != lock_id:
        raise VariableError(409, "attempting to modify locked variable")
    return current


def renew(state: State, namespace: str, path: str, lock_id: str) -> Outcome:
    """Start the holder's TTL again; the variable itself is not written (its ModifyIndex stays)."""
    if not lock_id:
        raise VariableError(500, "missing lock ID")
    now = time.time_ns()
    with state.write() as txn:
        current = _holder(txn, namespace, path, lock_id, now)
        lock = current.value["Lock"]
        txn.put(LOCK_KIND, current.key, {"Expires": now + lock["TTL"],
                                         "DelayUntil": now + lock["TTL"] + lock["LockDelay"]})
        return Outcome(metadata(current, lock), current.modify_index)


def release(state: State, namespace: str, path: str, lock_id: str) -> Outcome:
    """The holder gives the lock up: the variable is written without it (no LockDelay follows)."""
    if not lock_id:
        raise VariableError(400, "RPC Error:: 400,missing lock information")
    now = time.time_ns()
    with state.write() as txn:
        current = txn.get(KIND, key(namespace, path))
        if current is None:
            raise VariableError(404, "variable doesn't exist")
        held = _held(txn, current, now)
        if held is None:
            raise VariableError(409, "variable doesn't hold a lock")
        if held["ID"] != lock_id:  # Nomad answers a zero variable with an empty Lock
            zero = {**_zero(namespace, path), "Lock": {"ID": "", "TTL": "", "LockDelay": ""}}
            return Outcome(zero, 0, conflict=True)
        value = {k: v for k, v in current.value.items() if k != "Lock"}
        rec = txn.put(KIND, current.key, {**value, "ModifyTime": now})
        txn.delete(LOCK_KIND, current.key)
        return Outcome(metadata(rec), txn.index)


def expire(state: State, namespace: str, path: str, lock_id: str) -> bool:
    """Write the variable without lock `lock_id` once it lapsed (its LockDelay then runs);
    returns whether it did. Blocking queries on the variable see the lock go."""
    now = time.time_ns()
    with state.write() as txn:
        current = txn.get(KIND, key(namespace, path))
        lock = current.value.get("Lock") if current is not None else None
        if current is None or not lock or lock["ID"] != lock_id or _held(txn, current, now) is not None:
            return False
        value = {k: v for k, v in current.value.items() if k != "Lock"}
        txn.put(KIND, current.key, {**value, "ModifyTime": now})
        return True


def lock_ttl(state: State, namespace: str, path: str) -> int:
    """The TTL of the variable's lock in nanoseconds (the default when it has none)."""
    rec = state.get(KIND, key(namespace, path))
    lock = rec.value.get("Lock") if rec is not None else None
    return int(lock["TTL"]) if lock else DEFAULT_TTL
