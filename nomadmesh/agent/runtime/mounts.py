"""Host volumes bound into a task, in a mount namespace of its own.

The dev agent runs tasks as host processes, without the chroot Nomad's exec driver gives them. So
that a task sees a volume where the jobspec puts it without touching the host's mounts, the task
starts in a private mount namespace (util-linux `unshare --mount --propagation private`, which
execs in place, so the recorded pid stays the task's own) and a small shell binds each host path
at its destination under the task dir (remounted read-only when asked) before it execs the task.
The mounts live and die with the task's namespace: nothing to clean up on the host, and removing
the allocation dir never reaches through a mount into the volume.
"""
from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass


@dataclass(frozen=True)
class BindMount:
    host_path: str  # the host volume's directory
    task_path: str  # where the task sees it (an absolute path inside its task dir)
    read_only: bool


def namespace_argv(mounts: tuple[BindMount, ...]) -> list[str]:
    """The argv prefix that runs what follows it in a private mount namespace with `mounts` bound."""
    lines = ["set -e"]
    for m in mounts:
        host, task = shlex.quote(m.host_path), shlex.quote(m.task_path)
        lines += [f"mkdir -p {task}", f"mount --bind {host} {task}"]
        if m.read_only:
            lines.append(f"mount -o remount,bind,ro {task}")
    lines.append('exec "$@"')
    unshare = shutil.which("unshare") or "unshare"
    return [unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c", "\n".join(lines), "sh"]
