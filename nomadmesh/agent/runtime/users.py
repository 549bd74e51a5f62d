"""Running a task as its job's `user`, as Nomad's exec and raw_exec drivers do.

The switch happens in the task's own process, just before its command runs: `setpriv` (util-linux,
like the `nsenter` the process module already uses) sets the real and effective uid and gid, the
user's supplementary groups (initgroups) and PR_SET_NO_NEW_PRIVS, then execs the command in place,
so the pid the agent records is still the task's. no_new_privs means nothing the task runs can
gain privileges back through a setuid binary or file capabilities.

    lookup(name)                 the user's uid/gid, or UnknownUser (an OSError, so a launch failure)
    run_as_argv(user, setpriv)   the argv prefix that drops to `user`
    give_dirs(user, dirs)        chown the task's own dirs to it, never following a symlink
"""
from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

EXEC_DEFAULT_USER = "nobody"  # Nomad's exec driver runs tasks without a `user` as nobody


class UnknownUser(OSError):
    """The task's user does not exist on this host."""


@dataclass(frozen=True)
class TaskUser:
    name: str
    uid: int
    gid: int


def lookup(name: str) -> TaskUser:
    """The passwd entry for `name` (a user name, or a numeric uid as Nomad also accepts)."""
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, ValueError, OverflowError):
        # The wording of Nomad's executor ("failed to identify user ..." with Go's os/user message).
        raise UnknownUser(f"failed to identify user {name!r}: user: unknown user {name}") from None
    return TaskUser(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid)


def needs_switch(user: TaskUser) -> bool:
    return user.uid != os.geteuid() or user.gid != os.getegid()


def run_as_argv(user: TaskUser, setpriv: str | None = None) -> list[str]:
    """`setpriv ... --` dropping to `user` with its groups and no_new_privs."""
    if needs_switch(user) and os.geteuid() != 0:
        raise PermissionError(f"cannot run as user {user.name!r}: the agent is not running as root")
    binary = setpriv or shutil.which("setpriv")
    if binary is None:
        raise FileNotFoundError("cannot run as another user: setpriv (util-linux) is not installed")
    if not needs_switch(user):
        return [binary, "--no-new-privs", "--"]
    return [binary, f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", "--no-new-privs", "--"]


def give_dirs(user: TaskUser, dirs: tuple[Path, ...] | list[Path]) -> None:
    """Make the task's own dirs the user's (0700 stays 0700: secrets).

    Opened with O_NOFOLLOW: the task owns these dirs, so on a later start it could have replaced
    one by a symlink to /etc; chown through a descriptor of the real dir, or fail."""
    if not needs_switch(user):
        return
    for d in dirs:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchown(fd, user.uid, user.gid)
        finally:
            os.close(fd)
