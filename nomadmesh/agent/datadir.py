"""The agent's data dir: private to the agent and held by one agent at a time.

Everything in it is the agent's identity and memory (state.db with every KV value, the CA's private
key, the xDS socket that hands out service certificates), so it is 0700 and its files 0600, also
when the directory already existed with looser modes.

Two agents on one data dir would adopt the same processes and tear down each other's tasks and
namespaces, so the first one takes an exclusive `flock` on `agent.lock` (its pid written inside) and a
second one refuses to start, naming that pid, before it touches anything. The kernel drops the lock
when the holder dies, even by SIGKILL, so a stale lock file never blocks a restart.

Task allocation dirs live outside the data dir (Nomad's `client.alloc_dir`), because a task running
as `nobody` must reach its own dir, which a 0700 data dir forbids: see `alloc_root`.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from nomadmesh.errors import AgentError

LOCK_FILE = "agent.lock"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
ALLOC_ROOT_MODE = 0o711  # others may traverse to their own task dir, never list the allocations


class DataDirInUse(AgentError):
    """Another live agent holds the data dir's lock."""


def make_private_dir(path: Path) -> Path:
    """Create `path` (and parents) if needed and make it 0700; refuse a symlink or a foreign owner."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    _check_owned_dir(path)
    os.chmod(path, PRIVATE_DIR_MODE)  # mkdir's mode is masked by the umask and skipped if it existed
    return path


def make_private_file(path: Path) -> Path:
    """Create `path` empty if missing and make it 0600, without following a symlink."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)
    return path


def restrict_existing(*paths: Path) -> None:
    """chmod 0600 the given files that exist (SQLite's -wal/-shm next to the database)."""
    for path in paths:
        try:
            if not path.is_symlink():
                os.chmod(path, PRIVATE_FILE_MODE)
        except FileNotFoundError:
            pass


def make_shared_root(path: Path, mode: int) -> Path:
    """A directory the agent owns with `mode`, possibly in a world-writable parent such as /tmp.

    The name may be predictable there, so one that exists must be a real directory owned by this
    user: another local user must not be able to prepare it (or a symlink) for the agent to use."""
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    _check_owned_dir(path)
    os.chmod(path, mode)
    return path


def _check_owned_dir(path: Path) -> None:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise AgentError(f"{path}: not a directory (a symlink or file is in the way); remove it or choose another path")
    if st.st_uid != os.geteuid():
        raise AgentError(f"{path}: owned by uid {st.st_uid}, not by the agent's user (uid {os.geteuid()}); "
                         "remove it or choose another path")


def alloc_root(data_dir: Path, configured: Path | None) -> Path:
    """Where allocation dirs live: `--alloc-dir`, else a per-data-dir folder in the temp dir.

    Nomad's default (`<data_dir>/alloc`) cannot work under a 0700 data dir for tasks that run as
    another user, and a temp-dir folder is reachable whatever the data dir's parents allow."""
    if configured is not None:
        return Path(configured)
    digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"nomadmesh-alloc-{digest}"


class DataDirLock:
    """An exclusive flock on `<data dir>/agent.lock`, held for the agent's life."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_pid(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise AgentError(f"cannot lock {self.path}: {e.strerror or e}") from None
            who = f"pid {holder}" if holder else "another process"
            raise DataDirInUse(f"data dir {self.path.parent} is in use by another agent ({who}); stop that agent "
                               "or choose another --data-dir") from None
        os.fchmod(fd, PRIVATE_FILE_MODE)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
