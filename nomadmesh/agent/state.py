"""The dev agent's state: a small document store on SQLite with one monotonically increasing index.

Everything the agent knows (jobs and their versions, evaluations, allocations, deployments,
catalog services and checks, KV, config entries, the CA) is a JSON document addressed by
(kind, key). Every write transaction takes the next value of one global index, as Raft does in
Nomad and Consul, and records it as the document's ModifyIndex and as the kind's latest index.
That is all blocking queries need: `wait(kinds, index, timeout)` returns once any of those kinds
moved past `index`.

SQLite runs in WAL mode, so a SIGKILLed agent loses nothing that was committed. The schema and its
ordered migrations live here and are recorded in the `migrations` table.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nomadmesh.agent.datadir import make_private_file, restrict_existing
from nomadmesh.errors import AgentError
from nomadmesh.wakeups import Wakeups

log = logging.getLogger("nomadmesh.agent.state")

# Ordered, append-only: (name, SQL). Never edit a migration that has shipped; add a new one.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "0001_documents",
        """
        CREATE TABLE documents (
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            create_index INTEGER NOT NULL,
            modify_index INTEGER NOT NULL,
            PRIMARY KEY (kind, key)
        );
        CREATE TABLE kind_index (kind TEXT PRIMARY KEY, modify_index INTEGER NOT NULL);
        CREATE TABLE raft_index (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
        INSERT INTO raft_index (id, value) VALUES (1, 1);
        """,
    ),
)


@dataclass(frozen=True)
class Record:
    kind: str
    key: str
    value: Any
    create_index: int
    modify_index: int


@dataclass(frozen=True)
class Change:
    """One document a transaction wrote: `after` is None when it was deleted, `before` None when new."""
    kind: str
    key: str
    before: Any
    after: Any


CommitListener = Callable[[int, list[Change], "str | None"], None]


class StateFileError(AgentError):
    """The state file cannot be used (corrupt, not a database, unreadable): one line saying what to do."""


class DiskFullError(Exception):
    """A write failed because the data dir's disk is full; nothing of it was applied."""


class CasError(Exception):
    """A check-and-set write found another index than the one it was given."""


class Txn:
    """One write transaction: every put/delete in it gets the same new index."""

    def __init__(self, conn: sqlite3.Connection, index: int):
        self._conn = conn
        self.index = index
        self.kinds: set[str] = set()
        self.changes: list[Change] = []  # what commit listeners (the event stream) are told
        self.event_type: str | None = None  # the writer's name for this change (Nomad's message type)

    def get(self, kind: str, key: str) -> Record | None:
        return _get(self._conn, kind, key)

    def records(self, kind: str, prefix: str = "") -> list[Record]:
        return _records(self._conn, kind, prefix)

    def put(self, kind: str, key: str, value: Any, cas: int | None = None) -> Record:
        """Insert or replace. With `cas`, 0 means "must not exist", N means "ModifyIndex must be N"."""
        current = _get(self._conn, kind, key)
        if cas is not None:
            found = current.modify_index if current else 0
            if found != cas:
                raise CasError(f"{kind}/{key}: index is {found}, not {cas}")
        create_index = current.create_index if current else self.index
        self._conn.execute(
            "INSERT OR REPLACE INTO documents (kind, key, value, create_index, modify_index)"
            " VALUES (?, ?, ?, ?, ?)",
            (kind, key, json.dumps(value, sort_keys=True), create_index, self.index),
        )
        self.kinds.add(kind)
        self.changes.append(Change(kind, key, current.value if current else None, value))
        return Record(kind, key, value, create_index, self.index)

    def delete(self, kind: str, key: str, cas: int | None = None) -> bool:
        """Delete; returns whether something was deleted. `cas` as in put (0 never matches)."""
        current = _get(self._conn, kind, key)
        if cas is not None and (current is None or current.modify_index != cas):
            raise CasError(f"{kind}/{key}: index is {current.modify_index if current else 0}, not {cas}")
        if current is None:
            return False
        self._conn.execute("DELETE FROM documents WHERE kind = ? AND key = ?", (kind, key))
        self.kinds.add(kind)
        self.changes.append(Change(kind, key, current.value, None))
        return True

    def delete_prefix(self, kind: str, prefix: str) -> int:
        self.changes.extend(Change(kind, r.key, r.value, None) for r in _records(self._conn, kind, prefix))
        n = self._conn.execute(
            "DELETE FROM documents WHERE kind = ? AND substr(key, 1, ?) = ?", (kind, len(prefix), prefix)
        ).rowcount
        if n:
            self.kinds.add(kind)
        return n


SQLITE_FULL = 13
SQLITE_IOERR = 10
RESERVE_BYTES = 8 << 20  # room for the WAL to reach its checkpoint size (1000 pages) and then some


def _disk_full(e: sqlite3.OperationalError, db_path: str) -> bool:
    """SQLITE_FULL, or an I/O error while the disk has no free blocks left (a WAL that cannot grow)."""
    code = getattr(e, "sqlite_errorcode", 0) & 0xFF
    if code == SQLITE_FULL:
        return True
    if code == SQLITE_IOERR:
        try:
            return os.statvfs(Path(db_path).parent).f_bavail == 0
        except OSError:
            return False
    return False


class Reserve:
    """A file of RESERVE_BYTES next to the state, given up when the disk fills so that the agent can
    still record what its tasks do (a ballast file, as etcd and CockroachDB keep)."""

    def __init__(self, path: Path):
        self.path = path
        self.held = False

    def ensure(self) -> None:
        """Have the reserve, or raise DiskFullError: the disk is still too full for ordinary writes."""
        if self.held:
            return
        try:
            st = os.statvfs(self.path.parent)
            if not self.path.exists() and st.f_bavail * st.f_frsize < 2 * RESERVE_BYTES:
                # Just given up for the agent's own records: wait for real room, not a page or two.
                raise OSError(errno.ENOSPC, "no space left on device")
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            finally:
                os.close(fd)
        except OSError as e:
            self.path.unlink(missing_ok=True)
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(f"failed to write the state: no space left on device; free space on the "
                                    f"disk of {self.path.parent}") from None
            raise
        self.held = True

    def release(self) -> None:
        if self.held or self.path.exists():
            log.warning("state: the disk of %s is full; giving up the reserve so task states can still be "
                        "recorded; other writes fail until space is freed", self.path.parent)
        self.path.unlink(missing_ok=True)
        self.held = False


def _row(row: tuple[str, str, str, int, int]) -> Record:
    return Record(row[0], row[1], json.loads(row[2]), row[3], row[4])


def _get(conn: sqlite3.Connection, kind: str, key: str) -> Record | None:
    row = conn.execute(
        "SELECT kind, key, value, create_index, modify_index FROM documents WHERE kind = ? AND key = ?",
        (kind, key),
    ).fetchone()
    return _row(row) if row else None


def _records(conn: sqlite3.Connection, kind: str, prefix: str) -> list[Record]:
    # substr() instead of LIKE: keys may contain % and _ (KV keys are user input).
    rows = conn.execute(
        "SELECT kind, key, value, create_index, modify_index FROM documents"
        " WHERE kind = ? AND substr(key, 1, ?) = ? ORDER BY key",
        (kind, len(prefix), prefix),
    ).fetchall()
    return [_row(r) for r in rows]


class State:
    """Thread-safe: one connection guarded by a lock; readers and writers are short."""

    def __init__(self, path: Path | str):
        self.path = str(path)
        # Every KV value is in here: 0600 before SQLite opens it; its -wal and -shm files take the
        # database's mode when SQLite creates them, and older ones are tightened below.
        make_private_file(Path(self.path))
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._wakeups = Wakeups()  # the HTTP loop's blocking queries (wait_async)
        self._commit_listeners: list[CommitListener] = []
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            # quick_check reads every page: damage is found now, not as a 500 on some later read.
            problem = self._conn.execute("PRAGMA quick_check(1)").fetchone()[0]
            if problem != "ok":  # e.g. "*** in database main ***\nTree 4 page 3: ...": keep it one line
                raise sqlite3.DatabaseError(" ".join(problem.replace("*** in database main ***", "").split()))
            self._migrate()
            self._conn.execute("SELECT value FROM raft_index WHERE id = 1").fetchone()
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise StateFileError(
                f"state file {self.path} cannot be used ({e}): restore it from a backup, or move it away "
                "(with its -wal and -shm files) to start with an empty state") from None
        restrict_existing(Path(self.path + "-wal"), Path(self.path + "-shm"))
        self._reserve = Reserve(Path(self.path + ".reserve"))
        try:
            self._reserve.ensure()
        except DiskFullError:
            log.warning("state: the disk of %s is full: only task states and check results can be recorded",
                        Path(self.path).parent)

    def _migrate(self) -> None:
        with self._lock:
            self._conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL)")
            done = {r[0] for r in self._conn.execute("SELECT name FROM migrations")}
            for name, sql in MIGRATIONS:
                if name in done:
                    continue
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in sql.split(";"):
                        if statement.strip():
                            self._conn.execute(statement)
                    self._conn.execute("INSERT INTO migrations VALUES (?, ?)", (name, time.time()))
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- reads --------------------------------------------------------------------------------

    @property
    def index(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT value FROM raft_index WHERE id = 1").fetchone()[0])

    def kind_index(self, *kinds: str) -> int:
        """The latest index that touched any of `kinds` (at least 1, as Consul never returns 0)."""
        with self._lock:
            marks = ",".join("?" * len(kinds))
            row = self._conn.execute(
                f"SELECT MAX(modify_index) FROM kind_index WHERE kind IN ({marks})", kinds
            ).fetchone()
        return max(int(row[0] or 0), 1)

    def get(self, kind: str, key: str) -> Record | None:
        with self._lock:
            return _get(self._conn, kind, key)

    def records(self, kind: str, prefix: str = "") -> list[Record]:
        with self._lock:
            return _records(self._conn, kind, prefix)

    def values(self, kind: str, prefix: str = "") -> list[Any]:
        return [r.value for r in self.records(kind, prefix)]

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Several reads that must agree (a service and its checks): writers wait until they are done,
        like one read transaction. Keep the body to reads."""
        with self._lock:
            yield

    # --- writes -------------------------------------------------------------------------------

    def on_commit(self, listener: CommitListener) -> None:
        """Call `listener(index, changes, event_type)` after each committed write that changed
        something, in commit order, under the write lock: it must be quick and must not write."""
        with self._lock:
            self._commit_listeners.append(listener)

    @contextmanager
    def write(self, critical: bool = False) -> Iterator[Txn]:
        """A transaction with a fresh index; commits on success, rolls back on any exception.

        A full disk raises DiskFullError (not SQLite's bare error). `critical` writes are the
        agent's own record of what runs (task states, check results): the first one that hits a
        full disk frees the reserve file, so its retry, and the ones after it, fit; until the
        reserve can be put back, ordinary writes (KV, jobs...) fail at once with DiskFullError
        rather than eat that room."""
        with self._lock:
            if not critical:
                self._reserve.ensure()
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                index = self.index + 1
                txn = Txn(self._conn, index)
                yield txn
                if txn.kinds:
                    self._conn.execute("UPDATE raft_index SET value = ? WHERE id = 1", (index,))
                    self._conn.executemany(
                        "INSERT OR REPLACE INTO kind_index (kind, modify_index) VALUES (?, ?)",
                        [(k, index) for k in sorted(txn.kinds)],
                    )
                self._conn.execute("COMMIT")
            except BaseException as e:
                # On SQLITE_FULL SQLite may already have rolled the transaction back itself; a second
                # ROLLBACK would fail ("no transaction is active") and hide the real cause.
                if self._conn.in_transaction:
                    try:
                        self._conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        log.exception("state: rollback failed")
                if isinstance(e, sqlite3.OperationalError) and _disk_full(e, self.path):
                    if critical:
                        self._reserve.release()
                    raise DiskFullError(f"failed to write the state: no space left on device ({e}); free "
                                        f"space on the disk of {Path(self.path).parent}") from None
                raise
            if txn.kinds:
                for listener in self._commit_listeners:
                    try:
                        listener(index, txn.changes, txn.event_type)
                    except Exception:  # a listener's bug must not fail a write that is committed
                        log.exception("state: commit listener failed")
            if txn.kinds:
                self._changed.notify_all()
                self._wakeups.notify(txn.kinds)

    def put(self, kind: str, key: str, value: Any, cas: int | None = None) -> Record:
        with self.write() as txn:
            return txn.put(kind, key, value, cas=cas)

    def delete(self, kind: str, key: str, cas: int | None = None) -> bool:
        with self.write() as txn:
            return txn.delete(kind, key, cas=cas)

    # --- blocking queries ---------------------------------------------------------------------

    def wait(self, kinds: Iterable[str], min_index: int, timeout: float) -> int:
        """Block until one of `kinds` has an index above `min_index`, or `timeout` seconds pass.

        Returns the kinds' current index either way, as Nomad and Consul do.
        """
        kinds = tuple(kinds)
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            while True:
                current = self.kind_index(*kinds)
                remaining = deadline - time.monotonic()
                if current > min_index or remaining <= 0:
                    return current
                self._changed.wait(remaining)

    async def wait_async(self, kinds: Iterable[str], min_index: int, timeout: float) -> int:
        """`wait` for an asyncio caller: no thread is held, and cancelling it (a client that went
        away) ends the wait at once."""
        kinds = tuple(kinds)
        await self._wakeups.wait_for(lambda: self.kind_index(*kinds) > min_index, timeout, topics=kinds)
        return self.kind_index(*kinds)

    @property
    def async_waiters(self) -> int:
        """How many `wait_async` calls wait now (a cancelled one leaves at once)."""
        return len(self._wakeups)
