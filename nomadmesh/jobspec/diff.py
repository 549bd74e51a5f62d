"""Plan diffs in Nomad's shape, and whether a task group's change is in-place or destructive.

`diff(old, new)` returns Nomad's JobDiff (nomad/structs/diff.go):
    {Type, ID, Fields: [FieldDiff], Objects: [ObjectDiff], TaskGroups: [TaskGroupDiff]}
    FieldDiff     {Type, Name, Old, New, Annotations}     values as Go prints them ("true", "30000000000")
    ObjectDiff    {Type, Name, Fields, Objects}
    TaskGroupDiff {Type, Name, Fields, Objects, Tasks: [TaskDiff], Updates}
    TaskDiff      {Type, Name, Fields, Objects, Annotations}
Type is "Added" | "Deleted" | "Edited" | "None". Maps flatten to fields named `Meta[key]`; string
lists become an object of the same name with one field per element added or removed; driver
`Config` flattens to `args[0]`-style fields. Only changes are listed (Nomad's non-contextual diff).
Annotations follow scheduler/annotate.go: a Count change "forces create"/"forces destroy", a task
change "forces create/destroy update" unless it only touches KillTimeout, LogConfig, Service or
Constraint ("forces in-place update"). `Updates` (the per-group counts) is left None for the
scheduler's plan to fill in.

`update_kind(old_group, new_group)` follows scheduler/util.go `tasksUpdated`: changes to the task
set, a task's driver, user, config, env, artifacts, templates, resources or (combined job + group
+ task) meta, the group's network or ephemeral disk, or a group service's Connect block are
destructive; everything else (count, update, restart, services and checks) is in-place.
"""
from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import Any

from nomadmesh.jobspec.canonical import canonicalize
from nomadmesh.jobspec.schema import DIFF_NAMES, OBJECTS, Field

ADDED, DELETED, EDITED, NONE = "Added", "Deleted", "Edited", "None"

_JOB_FILTER = {"ID", "Status", "StatusDescription", "Version", "Stable", "CreateIndex", "ModifyIndex",
               "JobModifyIndex", "Update", "SubmitTime", "NomadTokenID", "VaultToken", "ConsulToken",
               "TaskGroups"}
_GROUP_FILTER = {"Name", "Tasks"}
_TASK_FILTER = {"Name"}
# Natural keys for lists of objects; lists without one are compared as sets.
_KEYS = {"Service": ("Name", "PortLabel"), "Check": ("Name",), "Upstream": ("DestinationName",),
         "Port": ("Label",), "ExposePath": ("Path",), "VolumeRequest": ("Name",)}
_IN_PLACE_TASK_FIELDS = {"KillTimeout"}
_IN_PLACE_TASK_OBJECTS = {"LogConfig", "Service", "Constraint"}


def diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    """Nomad's JobDiff between two jobs (either may be None for a job being added or removed)."""
    old_c = canonicalize(old) if old is not None else None
    new_c = canonicalize(new) if new is not None else None
    fields, objects = _members("Job", old_c, new_c, _JOB_FILTER)
    groups = _group_diffs(old_c, new_c)
    if old_c is None:
        kind = ADDED
    elif new_c is None:
        kind = DELETED
    elif fields or objects or any(g["Type"] != NONE for g in groups):
        kind = EDITED
    else:
        kind = NONE
    return {"Type": kind, "ID": (new_c or old_c or {}).get("ID", ""), "Fields": fields or None,
            "Objects": objects or None, "TaskGroups": groups or None}


def _group_diffs(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[dict[str, Any]]:
    old_groups = {g["Name"]: g for g in (old or {}).get("TaskGroups") or []}
    new_groups = {g["Name"]: g for g in (new or {}).get("TaskGroups") or []}
    out = []
    for name in sorted(old_groups.keys() | new_groups.keys()):
        a, b = old_groups.get(name), new_groups.get(name)
        fields, objects = _members("TaskGroup", a, b, _GROUP_FILTER)
        for f in fields:
            if f["Name"] == "Count" and f["Type"] == EDITED:
                f["Annotations"] = ["forces create" if int(f["New"]) > int(f["Old"]) else "forces destroy"]
        tasks = _task_diffs(a, b)
        kind = _kind(a, b, bool(fields or objects or any(t["Type"] != NONE for t in tasks)))
        out.append({"Type": kind, "Name": name, "Fields": fields or None, "Objects": objects or None,
                    "Tasks": tasks or None, "Updates": None})
    return out


def _task_diffs(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[dict[str, Any]]:
    old_tasks = {t["Name"]: t for t in (old or {}).get("Tasks") or []}
    new_tasks = {t["Name"]: t for t in (new or {}).get("Tasks") or []}
    out = []
    for name in sorted(old_tasks.keys() | new_tasks.keys()):
        a, b = old_tasks.get(name), new_tasks.get(name)
        fields, objects = _members("Task", a, b, _TASK_FILTER)
        kind = _kind(a, b, bool(fields or objects))
        out.append({"Type": kind, "Name": name, "Fields": fields or None, "Objects": objects or None,
                    "Annotations": _task_annotations(kind, fields, objects)})
    return out


def _task_annotations(kind: str, fields: list[dict[str, Any]], objects: list[dict[str, Any]]) -> list[str] | None:
    if kind == ADDED:
        return ["forces create"]
    if kind == DELETED:
        return ["forces destroy"]
    if kind == NONE:
        return None
    destructive = any(f["Name"] not in _IN_PLACE_TASK_FIELDS for f in fields) or any(
        o["Name"] not in _IN_PLACE_TASK_OBJECTS for o in objects)
    return ["forces create/destroy update" if destructive else "forces in-place update"]


def _kind(old: Any, new: Any, changed: bool) -> str:
    if old is None and new is not None:
        return ADDED
    if new is None and old is not None:
        return DELETED
    return EDITED if changed else NONE


def _members(obj: str, old: dict[str, Any] | None, new: dict[str, Any] | None,
             skip: AbstractSet[str] = frozenset()) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Field and object diffs between two objects of schema type `obj`."""
    a, b = old or {}, new or {}
    fields: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = []
    for field in OBJECTS[obj]:
        if field.api in skip or field.kind == "unsupported":
            continue
        va, vb = a.get(field.api), b.get(field.api)
        if field.kind in ("str", "int", "bool", "dur"):
            fd = _field(field.api, va, vb, old is None, new is None)
            if fd:
                fields.append(fd)
        elif field.kind in ("smap", "hdr"):
            fields.extend(_flat_fields(field.api, _flatten(va or {}), _flatten(vb or {})))
        elif field.kind == "strs":
            od = _string_set(field.api, va or [], vb or [])
            if od:
                objects.append(od)
        elif field.kind == "any":
            od = _flat_object(field.api, _flatten(va or {}, ""), _flatten(vb or {}, ""))
            if od:
                objects.append(od)
        elif field.kind == "obj":
            od = _object(field, va, vb)
            if od:
                objects.append(od)
        elif field.kind == "objs":
            objects.extend(_object_list(field, va or [], vb or []))
        elif field.kind == "omap":
            objects.extend(_object_list(field, list((va or {}).values()), list((vb or {}).values())))
    fields.sort(key=lambda f: f["Name"])
    objects.sort(key=lambda o: o["Name"])
    return fields, objects


def _object(field: Field, old: Any, new: Any) -> dict[str, Any] | None:
    if old is None and new is None:
        return None
    fields, objects = _members(field.obj or "", old, new)
    kind = _kind(old, new, bool(fields or objects))
    if kind == NONE:
        return None
    return {"Type": kind, "Name": DIFF_NAMES.get(field.obj or "", field.api), "Fields": fields or None,
            "Objects": objects or None}


def _object_list(field: Field, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    key_fields = _KEYS.get(field.obj or "")
    out: list[dict[str, Any]] = []
    if key_fields:
        def key(item: dict[str, Any]) -> tuple[Any, ...]:
            return tuple(item.get(k) for k in key_fields)
        old_by, new_by = {key(i): i for i in old}, {key(i): i for i in new}
        for k in sorted(old_by.keys() | new_by.keys(), key=str):
            od = _object(field, old_by.get(k), new_by.get(k))
            if od:
                out.append(od)
        return out
    unmatched_new = list(new)
    for item in old:
        if item in unmatched_new:
            unmatched_new.remove(item)
        else:
            gone = _object(field, item, None)
            if gone:
                out.append(gone)
    added = (_object(field, None, item) for item in unmatched_new)
    out.extend(o for o in added if o)
    return out


def _fmt(value: Any) -> str:
    """A value as Go's %v prints it in a FieldDiff."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _field(name: str, old: Any, new: Any, added: bool = False, deleted: bool = False) -> dict[str, Any] | None:
    a, b = _fmt(old), _fmt(new)
    if added:
        a = ""
    if deleted:
        b = ""
    if a == b:
        return None
    kind = ADDED if a == "" else DELETED if b == "" else EDITED
    return {"Type": kind, "Name": name, "Old": a, "New": b, "Annotations": None}


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """flatmap.Flatten: {"a": {"b": [1]}} → {"a[b][0]": "1"}; a top-level key is not bracketed."""
    out: dict[str, str] = {}

    def walk(v: Any, path: str) -> None:
        if isinstance(v, dict):
            for k, item in v.items():
                walk(item, f"{path}[{k}]" if path else str(k))
        elif isinstance(v, list):
            for i, item in enumerate(v):
                walk(item, f"{path}[{i}]")
        else:
            out[path] = _fmt(v)

    walk(value, prefix)
    return out


def _flat_fields(name: str, old: dict[str, str], new: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for key in sorted(old.keys() | new.keys()):
        fd = _field(f"{name}[{key.split('[', 1)[0]}]" + (key[len(key.split('[', 1)[0]):]), old.get(key),
                    new.get(key))
        if fd:
            out.append(fd)
    return out


def _flat_object(name: str, old: dict[str, str], new: dict[str, str]) -> dict[str, Any] | None:
    fields = [fd for key in sorted(old.keys() | new.keys()) if (fd := _field(key, old.get(key), new.get(key)))]
    if not fields:
        return None
    kind = ADDED if not old else DELETED if not new else EDITED
    return {"Type": kind, "Name": name, "Fields": fields, "Objects": None}


def _string_set(name: str, old: list[str], new: list[str]) -> dict[str, Any] | None:
    removed = [v for v in old if v not in new]
    added = [v for v in new if v not in old]
    if not removed and not added:
        return None
    fields = [{"Type": DELETED, "Name": name, "Old": v, "New": "", "Annotations": None} for v in removed]
    fields += [{"Type": ADDED, "Name": name, "Old": "", "New": v, "Annotations": None} for v in added]
    kind = ADDED if not old else DELETED if not new else EDITED
    return {"Type": kind, "Name": name, "Fields": fields, "Objects": None}


# ------------------------------------------------------------------------------------------
# In-place or destructive


def update_kind(old_group: dict[str, Any], new_group: dict[str, Any], old_job: dict[str, Any] | None = None,
                new_job: dict[str, Any] | None = None) -> str:
    """"none" | "in-place" | "destructive" for one task group (pass canonicalized groups).

    `old_job`/`new_job` add the job-level meta to the comparison, as Nomad's combined task meta
    does; without them only group and task meta count.
    """
    if _clean(old_group) == _clean(new_group) and _clean(_meta(old_job)) == _clean(_meta(new_job)):
        return "none"
    return "destructive" if _destructive(old_group, new_group, old_job, new_job) else "in-place"


def _meta(obj: dict[str, Any] | None) -> dict[str, str]:
    return dict((obj or {}).get("Meta") or {})


def _destructive(a: dict[str, Any], b: dict[str, Any], job_a: dict[str, Any] | None,
                 job_b: dict[str, Any] | None) -> bool:
    tasks_a = {t.get("Name"): t for t in a.get("Tasks") or []}
    tasks_b = {t.get("Name"): t for t in b.get("Tasks") or []}
    if len(a.get("Tasks") or []) != len(b.get("Tasks") or []) or tasks_a.keys() != tasks_b.keys():
        return True
    if _clean(a.get("EphemeralDisk")) != _clean(b.get("EphemeralDisk")):
        return True
    if _networks(a) != _networks(b):
        return True
    if _connect_blocks(a) != _connect_blocks(b):
        return True
    for name, ta in tasks_a.items():
        tb = tasks_b[name]
        for key in ("Driver", "User", "Config", "Env", "Artifacts", "Templates", "Lifecycle"):
            if _clean(ta.get(key)) != _clean(tb.get(key)):
                return True
        combined_a = {**_meta(job_a), **_meta(a), **_meta(ta)}
        combined_b = {**_meta(job_b), **_meta(b), **_meta(tb)}
        if combined_a != combined_b:
            return True
        ra, rb = ta.get("Resources") or {}, tb.get("Resources") or {}
        for key in ("CPU", "Cores", "MemoryMB", "MemoryMaxMB"):
            if (ra.get(key) or 0) != (rb.get(key) or 0):
                return True
    return False


def _networks(group: dict[str, Any]) -> list[Any]:
    """What of a group's networks matters: mode, hostname, DNS and port labels with static values."""
    out = []
    for n in group.get("Networks") or []:
        ports = sorted((p.get("Label"), p.get("Value") or 0, p.get("To") or 0, p.get("HostNetwork") or "default")
                       for p in n.get("ReservedPorts") or [])
        ports += sorted((p.get("Label"), -1, p.get("To") or 0, p.get("HostNetwork") or "default")
                        for p in n.get("DynamicPorts") or [])
        out.append((n.get("Mode") or "host", n.get("Hostname") or "", repr(_clean(n.get("DNS"))), ports))
    return out


def _connect_blocks(group: dict[str, Any]) -> list[Any]:
    return sorted((repr(s.get("Name")), repr(_clean(s.get("Connect")))) for s in group.get("Services") or []
                  if s.get("Connect"))


def _clean(value: Any) -> Any:
    """Drop None and empty values so a missing field equals an unset one."""
    if isinstance(value, dict):
        cleaned = {k: _clean(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, {}, [], "")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
