"""Host volumes, as Nomad's client declares them and its scheduler and volume hook use them.

The agent's config file (`nomadmesh agent --dev --config client.hcl`, Nomad's agent config format)
declares them: `client { host_volume "name" { path = "/abs/dir"  read_only = true } }`; nothing
else in the file is taken (a field the dev agent would ignore is an error naming it). The node
fingerprints them as `HostVolumes`. A group `volume "x" { type = "host"  source = "name" }` is
feasible only on a node with a compatible one (Nomad's HostVolumeChecker: the source exists, and
a read-only host volume only for a read-only request; else "missing compatible host volumes").
A task's `volume_mount` binds it at `destination` as the task sees its filesystem: raw_exec cannot
mount (Nomad's error, the task fails); exec gets a bind mount in its own mount namespace
(runtime/mounts.py) at the destination under its task dir, which is where Nomad's exec chroot
puts it. CSI volumes and per_alloc/sticky requests are refused at register.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nomadmesh.agent.nomad.platform import BindMount
from nomadmesh.errors import AgentError
from nomadmesh.jobspec import hcl
from nomadmesh.jobspec.errors import JobspecError

NO_MOUNTS = ("raw_exec",)  # drivers whose capabilities say MountConfigSupportNone
_ALLOWED = {"path", "read_only"}


class ConfigError(AgentError):
    """The agent's config file cannot be used: `file: field: message` (bad input: exit 2)."""

    exit_code = 2


def load_config(path: Path) -> dict[str, dict[str, Any]]:
    """The host volumes a Nomad agent config file declares, as Nomad's ClientHostVolumeConfig by name."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
        body = hcl.parse(text)
        evaluator = hcl.Evaluator(text, {}, lambda *_a: None)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: cannot read: {e}") from None
    except JobspecError as e:
        raise ConfigError(f"{where}: {e}") from None
    for name in body.attrs:
        raise ConfigError(f"{where}: {name}: not supported by the dev agent's config (only client.host_volume)")
    volumes: dict[str, dict[str, Any]] = {}
    for block in body.blocks:
        if block.type != "client":
            raise ConfigError(f"{where}: {block.type}: not supported by the dev agent's config "
                              "(only client.host_volume)")
        for name in block.body.attrs:
            raise ConfigError(f"{where}: client.{name}: not supported by the dev agent's config")
        for vol in block.body.blocks:
            field = f"client.{vol.type}"
            if vol.type != "host_volume" or len(vol.labels) != 1:
                raise ConfigError(f'{where}: {field}: not supported by the dev agent\'s config '
                                  '(only host_volume "name" { ... })')
            volumes[vol.labels[0]] = _volume(where, f'{field} "{vol.labels[0]}"', vol, evaluator)
    return volumes


def _volume(where: str, field: str, block: hcl.Block, ev: hcl.Evaluator) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, attr in block.body.attrs.items():
        if name not in _ALLOWED:
            raise ConfigError(f"{where}: {field}.{name}: not supported by the dev agent's config")
        try:
            values[name] = ev.value(attr.expr)
        except JobspecError as e:
            raise ConfigError(f"{where}: {field}.{name}: {e}") from None
    path, read_only = values.get("path"), values.get("read_only", False)
    if not isinstance(path, str) or not os.path.isabs(path):
        raise ConfigError(f"{where}: {field}.path: an absolute path is required")
    if not os.path.isdir(path):
        raise ConfigError(f"{where}: {field}.path: {path} is not a directory")
    if not isinstance(read_only, bool):
        raise ConfigError(f"{where}: {field}.read_only: must be a bool")
    return {"Name": block.labels[0], "Path": os.path.normpath(path), "ReadOnly": read_only, "ID": ""}


def refusals(job: dict[str, Any]) -> str | None:
    """What the dev agent refuses at register (400): volumes it has nothing to serve with."""
    for group in job.get("TaskGroups") or []:
        for name, req in (group.get("Volumes") or {}).items():
            if req.get("Type") == "csi":
                return f'volume "{name}": CSI volumes are not supported by the dev agent (it runs no CSI plugin)'
            if req.get("Type") == "host" and req.get("PerAlloc"):
                return f'volume "{name}": per_alloc is not supported by the dev agent'
        for task in group.get("Tasks") or []:
            for mount in task.get("VolumeMounts") or []:
                if (mount.get("PropagationMode") or "private") != "private":
                    return (f'task "{task["Name"]}": volume_mount propagation_mode '
                            f'"{mount["PropagationMode"]}" is not supported by the dev agent (only "private")')
    return None


class VolumeError(Exception):
    """The volume hook's failure; the task fails with "Task hook failed" "volumes: <message>"."""


def task_mounts(tg: dict[str, Any], task: dict[str, Any], have: dict[str, dict[str, Any]],
                task_dir: str) -> tuple[BindMount, ...]:
    """The task's host volume mounts (Nomad's volume hook) from the client's host volumes `have`:
    read-only if the host volume, the group's request or the mount says so."""
    requests = {name: req for name, req in (tg.get("Volumes") or {}).items() if req.get("Type") == "host"}
    missing = sorted(req["Source"] for req in requests.values() if req.get("Source") not in have)
    if missing:
        raise VolumeError("host volume validation error: " + "; ".join(f"missing {m}" for m in missing))
    mounts = []
    for m in task.get("VolumeMounts") or []:
        req = requests.get(m.get("Volume") or "")
        if req is None:
            continue
        vol = have[req["Source"]]
        inside = os.path.normpath(os.path.join(task_dir, (m.get("Destination") or "").lstrip("/")))
        if not inside.startswith(task_dir.rstrip("/") + "/"):
            raise VolumeError(f"volume_mount destination {m.get('Destination')!r} escapes the task directory")
        mounts.append(BindMount(vol["Path"], inside, bool(vol.get("ReadOnly") or req.get("ReadOnly")
                                                           or m.get("ReadOnly"))))
    if mounts and task.get("Driver") in NO_MOUNTS:
        raise VolumeError(f'task driver "{task["Driver"]}" for "{task["Name"]}" does not support host volumes')
    return tuple(mounts)
