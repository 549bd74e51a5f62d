"""Nomad's allocation directory layout under the alloc dir (Nomad's client.alloc_dir).

    <alloc dir>/        0711: anyone may pass through to a dir they own, nobody may list it
      <alloc_id>/       0711, the agent's
        alloc/          0755, shared by every task of the allocation (NOMAD_ALLOC_DIR)
          logs/         0755, the agent's: <task>.stdout.0 / <task>.stderr.0, read by the logs endpoint
          tmp/          0777, as Nomad makes them: every task of the group may write there
          data/         0777
        <task>/         the task's working directory, owned by the task's user (runtime/users.py)
          local/        NOMAD_TASK_DIR
          secrets/      NOMAD_SECRETS_DIR, mode 0700
          tmp/          TMPDIR for the task

The alloc dir is outside the agent's 0700 data dir, or a task running as `nobody` could not reach
its own dir. logs/ stays the agent's: it opens the log files there as root, so a task must not be
able to put a symlink in their place.

Names come from jobs users submit, so every alloc id and task name is checked before it becomes a
path component: a name such as `../x` must never reach outside the allocs dir.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

# Nomad task names may contain most characters; we only refuse what changes the path's meaning.
_BAD_COMPONENT = re.compile(r"[/\\\x00]")


def check_component(value: str, what: str) -> str:
    """Return `value` if it is safe as one path component, else raise ValueError naming `what`."""
    if not value or value in (".", "..") or _BAD_COMPONENT.search(value):
        raise ValueError(f"invalid {what} {value!r}: must be one path component without '/' or '..'")
    return value


@dataclass(frozen=True)
class TaskDir:
    root: Path  # <alloc>/<task>: the task's working directory

    @property
    def local(self) -> Path:
        return self.root / "local"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def owned_by_task(self) -> tuple[Path, ...]:
        """The dirs that belong to the task's user (the rest of the allocation is the agent's)."""
        return (self.root, self.local, self.secrets, self.tmp)


@dataclass(frozen=True)
class AllocDir:
    root: Path  # <alloc dir>/<alloc_id>

    @property
    def shared(self) -> Path:
        return self.root / "alloc"

    @property
    def logs(self) -> Path:
        return self.shared / "logs"

    @property
    def data(self) -> Path:
        return self.shared / "data"

    @property
    def tmp(self) -> Path:
        return self.shared / "tmp"

    def task(self, name: str) -> TaskDir:
        return TaskDir(self.root / check_component(name, "task name"))

    def stdout_path(self, task: str) -> Path:
        return self.logs / f"{check_component(task, 'task name')}.stdout.0"

    def stderr_path(self, task: str) -> Path:
        return self.logs / f"{check_component(task, 'task name')}.stderr.0"


def _set_mode(path: Path, mode: int) -> None:
    """chmod without following a symlink: a task owns some of these dirs and could plant one."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


class AllocDirs:
    """Creates, finds and removes allocation directories under one alloc dir."""

    def __init__(self, alloc_root: Path):
        self.base = Path(alloc_root)

    def path(self, alloc_id: str) -> AllocDir:
        return AllocDir(self.base / check_component(alloc_id, "allocation id"))

    def build(self, alloc_id: str, tasks: list[str] | tuple[str, ...]) -> AllocDir:
        """Create the shared dirs and each task's dirs; idempotent, so a restarted task reuses them."""
        self.base.mkdir(parents=True, exist_ok=True)
        _set_mode(self.base, 0o711)
        adir = self.path(alloc_id)
        for d, mode in ((adir.root, 0o711), (adir.shared, 0o755), (adir.logs, 0o755), (adir.data, 0o777),
                        (adir.tmp, 0o777)):
            d.mkdir(parents=True, exist_ok=True)
            _set_mode(d, mode)  # mkdir's mode is masked by the umask; chmod is not
        for name in tasks:
            tdir = adir.task(name)
            for d in (tdir.root, tdir.local, tdir.tmp, tdir.secrets):
                d.mkdir(parents=True, exist_ok=True)
            _set_mode(tdir.secrets, 0o700)
        return adir

    def exists(self, alloc_id: str) -> bool:
        return self.path(alloc_id).root.is_dir()

    def list_ids(self) -> list[str]:
        if not self.base.is_dir():
            return []
        return sorted(p.name for p in self.base.iterdir() if p.is_dir())

    def remove(self, alloc_id: str) -> None:
        """Delete the allocation's directory tree; a missing directory is not an error."""
        shutil.rmtree(self.path(alloc_id).root, ignore_errors=True)
