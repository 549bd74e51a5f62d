"""Task events and task state in Nomad's shapes (structs.TaskEvent, structs.TaskState).

The supervisor emits TaskEvents through a callback; the scheduler stores them and serves
`to_nomad()` in an allocation's TaskStates.
"""
from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field
from typing import Any

from nomadmesh.durations import go_duration

# Nomad's event type strings (nomad/structs/structs.go).
RECEIVED = "Received"
TASK_SETUP = "Task Setup"
STARTED = "Started"
TERMINATED = "Terminated"
RESTARTING = "Restarting"
NOT_RESTARTING = "Not Restarting"
KILLING = "Killing"
KILLED = "Killed"
DRIVER_FAILURE = "Driver Failure"
RESTART_SIGNALED = "Restart Signaled"
SIGNALING = "Signaling"

PENDING, RUNNING, DEAD = "pending", "running", "dead"
MAX_EVENTS = 10  # Nomad keeps the last 10 events per task
ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(ns: int | None) -> str:
    """Go's time.Time JSON form (RFC 3339 with trimmed nanoseconds, UTC); None → Go's zero time."""
    if not ns:
        return ZERO_TIME
    secs, frac = divmod(ns, 1_000_000_000)
    base = _dt.datetime.fromtimestamp(secs, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    tail = f"{frac:09d}".rstrip("0")
    return f"{base}.{tail}Z" if tail else f"{base}Z"


@dataclass(frozen=True)
class TaskEvent:
    type: str
    message: str
    time_ns: int = field(default_factory=time.time_ns)
    exit_code: int | None = None
    failed: bool = False
    signal: int = 0
    restart_reason: str = ""
    start_delay_ns: int = 0
    kill_timeout_ns: int = 0

    def to_nomad(self) -> dict[str, Any]:
        details: dict[str, str] = {}
        if self.exit_code is not None:
            details["exit_code"] = str(self.exit_code)
            details["signal"] = str(self.signal)
        if self.failed:
            details["fails_task"] = "true"
        if self.restart_reason:
            details["restart_reason"] = self.restart_reason
        if self.start_delay_ns:
            details["start_delay"] = str(self.start_delay_ns)
        if self.kill_timeout_ns:
            details["kill_timeout"] = go_duration(self.kill_timeout_ns)
        return {
            "Type": self.type,
            "Time": self.time_ns,
            "Message": self.message,
            "DisplayMessage": self.message,
            "Details": details,
            "FailsTask": self.failed,
            "RestartReason": self.restart_reason,
            "ExitCode": self.exit_code if self.exit_code is not None else 0,
            "Signal": self.signal,
            "StartDelay": self.start_delay_ns,
            "KillTimeout": self.kill_timeout_ns,
        }


@dataclass(frozen=True)
class TaskState:
    state: str = PENDING
    failed: bool = False
    restarts: int = 0
    started_at_ns: int | None = None
    finished_at_ns: int | None = None
    last_restart_ns: int | None = None
    pid: int | None = None
    start_time: int | None = None  # /proc/<pid>/stat starttime, to re-identify the process later
    events: tuple[TaskEvent, ...] = ()

    def to_nomad(self) -> dict[str, Any]:
        return {
            "State": self.state,
            "Failed": self.failed,
            "Restarts": self.restarts,
            "LastRestart": rfc3339(self.last_restart_ns),
            "StartedAt": rfc3339(self.started_at_ns),
            "FinishedAt": rfc3339(self.finished_at_ns),
            "Events": [e.to_nomad() for e in self.events],
        }
