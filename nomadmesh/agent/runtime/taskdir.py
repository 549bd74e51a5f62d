"""Nomad's allocation directory layout under `<data_dir>/allocs/<alloc_id>/`.

    <alloc_id>/
      alloc/            shared by every task of the allocation (NOMAD_ALLOC_DIR)
        logs/           <task>.stdout.0 / <task>.stderr.0, read by the logs endpoint
        tmp/
        data/
      <task>/           the task's working directory
        local/          NOMAD_TASK_DIR
        secrets/        NOMAD_SECRETS_DIR, mode 0700
        tmp/            TMPDIR for the task

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


@dataclass(frozen=True)
class AllocDir:
    root: Path  # <data_dir>/allocs/<alloc_id>

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


class AllocDirs:
    """Creates, finds and removes allocation directories under one data dir."""

    def __init__(self, data_dir: Path):
        self.base = Path(data_dir) / "allocs"

    def path(self, alloc_id: str) -> AllocDir:
        return AllocDir(self.base / check_component(alloc_id, "allocation id"))

    def build(self, alloc_id: str, tasks: list[str] | tuple[str, ...]) -> AllocDir:
        """Create the shared dirs and each task's dirs; idempotent, so a restarted task reuses them."""
        adir = self.path(alloc_id)
        for d in (adir.logs, adir.data, adir.tmp):
            d.mkdir(parents=True, exist_ok=True)
        for name in tasks:
            tdir = adir.task(name)
            for d in (tdir.local, tdir.tmp):
                d.mkdir(parents=True, exist_ok=True)
            tdir.secrets.mkdir(parents=True, exist_ok=True)
            os.chmod(tdir.secrets, 0o700)  # mkdir's mode is masked by the umask; chmod is not
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
