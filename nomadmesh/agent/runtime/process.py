"""A supervised task process: start, watch, restart per policy, stop, and adopt after an agent restart.

Design choices, each for a reason:
- stdout/stderr go straight into the log files (no pipes through the agent), and the task runs in a
  new session, so a task outlives an agent that is SIGKILLed and a restarted agent can adopt it.
- The process is identified by (pid, starttime from /proc/<pid>/stat): a pid alone may be reused.
- The watcher waits on a pidfd (os.pidfd_open) plus a wake pipe, so an exit, a stop or a detach is
  seen at once without polling, for our own children and for adopted processes alike.
- Network namespaces are entered with `nsenter --net=<path> --`: Python 3.11 has no os.setns, and
  nsenter execs the task in place, so the pid we record is the task's own. The task's user is taken
  the same way, after the namespace: `setpriv` with no_new_privs (runtime/users.py).

Events follow Nomad: Received, Task Setup, Started, Terminated, Restarting / Not Restarting,
Killing, Killed. Stop sends kill_signal (SIGINT by default) to the whole process group, then
SIGKILL after kill_timeout.
"""
from __future__ import annotations

import errno
import logging
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from nomadmesh.agent.runtime import events as ev, users
from nomadmesh.agent.runtime.events import TaskEvent, TaskState
from nomadmesh.agent.runtime.mounts import BindMount, namespace_argv
from nomadmesh.agent.runtime.restarts import NS, RestartPolicy, RestartTracker
from nomadmesh.durations import go_duration

log = logging.getLogger("nomadmesh.agent.process")
EventCallback = Callable[[str, TaskEvent], None]
SIGNAL_BASE = 128  # exit code of a signalled process, as shells and Nomad's executor report it


@dataclass(frozen=True)
class TaskSpec:
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path
    stdout_path: Path
    stderr_path: Path
    netns_path: str | None = None
    kill_signal: int = signal.SIGINT
    kill_timeout_s: float = 5.0
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    job_type: str = "service"
    user: str = ""  # run as this user (runtime/users.py); "" = the agent's own user
    user_dirs: tuple[Path, ...] = ()  # the task's own dirs, chowned to `user` before it starts
    mounts: tuple[BindMount, ...] = ()  # host volumes, bound in the task's own mount namespace


@dataclass(frozen=True)
class ProcessIdentity:
    pid: int
    start_time: int


def signal_number(name: str | None) -> int:
    """Nomad's kill_signal ("SIGTERM", "SIGINT", ...) → number; empty means SIGINT, Nomad's default."""
    if not name:
        return signal.SIGINT
    try:
        return int(signal.Signals[name.upper() if name.upper().startswith("SIG") else "SIG" + name.upper()])
    except KeyError:
        raise ValueError(f"unknown kill_signal {name!r}") from None


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks since boot), or None if the process is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # the comm field may hold spaces and parentheses
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


class TaskProcess:
    """One task's process and its supervisor thread. Thread-safe; callbacks run on the supervisor thread."""

    def __init__(self, spec: TaskSpec, on_event: EventCallback | None = None):
        self.spec = spec
        self._on_event = on_event
        self._lock = threading.RLock()
        self._state = TaskState()
        self._tracker = RestartTracker(spec.restart, spec.job_type, time.monotonic_ns())
        self._pid: int | None = None
        self._pidfd: int | None = None
        self._own_child = False
        self._reaped = True
        self._stopping = False
        self._detached = False
        self._restart_requested = False
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._done = threading.Event()

    # --- public API ---------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the task and supervise it. A task that cannot be launched at all (missing binary,
        bad cwd) ends dead and failed with a "Driver Failure" event, like Nomad's."""
        self._emit(TaskEvent(ev.RECEIVED, "Task received by client"))
        self._emit(TaskEvent(ev.TASK_SETUP, "Building Task Directory"))
        try:
            self._spawn()
        except OSError as e:
            self._finish(failed=True, event=TaskEvent(ev.DRIVER_FAILURE, f"failed to launch command: {e}",
                                                      failed=True))
            return
        self._start_thread()

    @classmethod
    def adopt(cls, spec: TaskSpec, identity: ProcessIdentity, on_event: EventCallback | None = None,
              restarts: int = 0, started_at_ns: int | None = None) -> TaskProcess | None:
        """Watch an already-running task left by a previous agent; None if that process is gone.

        The pid must still exist with the recorded start time, so a reused pid is never adopted.
        """
        if proc_start_time(identity.pid) != identity.start_time:
            return None
        try:
            pidfd = os.pidfd_open(identity.pid)
        except ProcessLookupError:
            return None
        if proc_start_time(identity.pid) != identity.start_time:  # exited and reused in between
            os.close(pidfd)
            return None
        tp = cls(spec, on_event)
        tp._pid, tp._pidfd, tp._reaped = identity.pid, pidfd, False
        tp._own_child = _is_child(identity.pid)
        tp._state = replace(tp._state, state=ev.RUNNING, restarts=restarts,
                            started_at_ns=started_at_ns or time.time_ns(),
                            pid=identity.pid, start_time=identity.start_time)
        tp._start_thread()
        return tp

    def state(self) -> TaskState:
        with self._lock:
            return self._state

    @property
    def identity(self) -> ProcessIdentity | None:
        s = self.state()
        return ProcessIdentity(s.pid, s.start_time) if s.pid and s.start_time is not None else None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the task is dead for good (no more restarts); True if it is."""
        return self._done.wait(timeout)

    def stop(self, kill_signal: int | None = None, kill_timeout_s: float | None = None) -> None:
        """Stop the task for good: kill_signal to its process group, SIGKILL after kill_timeout.

        Blocks until the task is dead. Safe to call more than once and from any thread.
        """
        sig = self.spec.kill_signal if kill_signal is None else kill_signal
        timeout = self.spec.kill_timeout_s if kill_timeout_s is None else kill_timeout_s
        with self._lock:
            if self._done.is_set() or self._detached:
                return
            if self._thread is None:  # never started: nothing to kill
                self._stopping = True
                self._state = replace(self._state, state=ev.DEAD, finished_at_ns=time.time_ns())
                self._done.set()
                return
            first = not self._stopping
            self._stopping = True
        if first:
            self._emit(TaskEvent(ev.KILLING, f"Sent interrupt. Waiting {go_duration(int(timeout * NS))} "
                                             f"before force killing", kill_timeout_ns=int(timeout * NS)))
        self._signal_group(sig)
        self._wake()
        if not self._done.wait(timeout):
            self._signal_group(signal.SIGKILL)
            self._done.wait(timeout + 10)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def restart(self, reason: str, env: Mapping[str, str] | None = None) -> bool:
        """Kill the task and start it again at once, outside its restart policy, as Nomad's task
        restart (a template's change_mode restart, `nomad alloc restart`); `env` replaces its
        environment for the new run. False when the task is not running under supervision."""
        with self._lock:
            if self._done.is_set() or self._stopping or self._detached or self._thread is None:
                return False
            if env is not None:
                self.spec = replace(self.spec, env=dict(env))
            self._restart_requested = True
            pid = self._pid
        self._emit(TaskEvent(ev.RESTART_SIGNALED, reason, restart_reason=reason))  # Nomad's SetRestartReason
        self._signal_group(self.spec.kill_signal)
        threading.Thread(target=self._kill_after_timeout, args=(pid,), daemon=True).start()
        return True

    def _kill_after_timeout(self, pid: int | None) -> None:
        """SIGKILL a process that outlives its kill_timeout after a restart's kill signal."""
        time.sleep(self.spec.kill_timeout_s)
        with self._lock:
            same = self._pid == pid and not self._reaped
        if same:
            self._signal_group(signal.SIGKILL)

    def signal(self, sig: int, reason: str = "") -> None:
        """Send a signal to the task's process group without stopping supervision (nomad alloc signal);
        with a `reason`, a "Signaling" task event records it first."""
        if reason:
            self._emit(TaskEvent(ev.SIGNALING, reason))
        self._signal_group(sig)

    def note(self, event_type: str, message: str) -> None:
        """Record a task event the supervisor did not raise itself (Nomad's "Leader Task Dead",
        "Waiting for shutdown delay"), in order with the task's own events."""
        self._emit(TaskEvent(event_type, message))

    def detach(self) -> None:
        """Stop supervising but leave the process running (agent shutdown without stopping tasks)."""
        with self._lock:
            self._detached = True
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # --- supervisor ---------------------------------------------------------------------------

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name=f"task-{self.spec.name}", daemon=True)
        self._thread.start()

    def _spawn(self) -> None:
        s = self.spec
        argv = list(s.argv)
        if s.user:
            # An unknown user or a failed chown is an OSError: the launch fails with a Driver Failure.
            user = users.lookup(s.user)
            users.give_dirs(user, s.user_dirs)
            argv = users.run_as_argv(user) + argv
        if s.mounts:  # bound as root, before the task's user is taken
            argv = namespace_argv(s.mounts) + argv
        if s.netns_path:
            nsenter = shutil.which("nsenter") or "nsenter"
            argv = [nsenter, f"--net={s.netns_path}", "--", *argv]
        s.stdout_path.parent.mkdir(parents=True, exist_ok=True)
        with open(s.stdout_path, "ab") as out, open(s.stderr_path, "ab") as err:
            proc = subprocess.Popen(argv, env=dict(s.env), cwd=str(s.cwd), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, start_new_session=True, close_fds=True)
        # We reap the child ourselves through its pidfd. Marking the Popen finished stops
        # subprocess from reaping it behind our back when the Popen object is collected.
        proc.returncode = 0
        pidfd = os.pidfd_open(proc.pid)
        start_time = proc_start_time(proc.pid)
        with self._lock:
            if self._pidfd is not None:  # the previous run's pidfd, now that it is reaped
                os.close(self._pidfd)
            self._pid, self._pidfd, self._own_child, self._reaped = proc.pid, pidfd, True, False
            self._state = replace(self._state, state=ev.RUNNING, started_at_ns=time.time_ns(),
                                  finished_at_ns=None, pid=proc.pid, start_time=start_time)
        self._emit(TaskEvent(ev.STARTED, "Task started by client"))

    def _supervise(self) -> None:
        try:
            while True:
                result = self._wait_exit()
                if result is None:  # detached: the process lives on, unsupervised
                    return
                code, sig = result
                msg = f"Exit Code: {code}" if code is not None else "Exit Code: unknown (adopted task)"
                if sig:
                    msg += f", Signal: {sig}"
                self._emit(TaskEvent(ev.TERMINATED, msg, exit_code=code, signal=sig))
                if self._stopping:
                    self._finish(failed=False, event=TaskEvent(ev.KILLED, "Task successfully killed"))
                    return
                with self._lock:
                    triggered, self._restart_requested = self._restart_requested, False
                if triggered:  # restart(): at once, counted, outside the restart policy (as Nomad)
                    restarting = TaskEvent(ev.RESTARTING, "Task restarting in 0s", restart_reason="Restart triggered")
                    with self._lock:
                        self._state = replace(self._state, state=ev.PENDING, restarts=self._state.restarts + 1,
                                              last_restart_ns=restarting.time_ns, pid=None, start_time=None)
                    self._emit(restarting)
                    if not self._respawn():
                        return
                    continue
                decision = self._tracker.on_exit(code, time.monotonic_ns())
                if decision.action == "terminated":
                    self._finish(failed=False, event=None)
                    return
                if decision.action == "fail":
                    self._finish(failed=True, event=TaskEvent(
                        ev.NOT_RESTARTING, decision.reason, failed=True, restart_reason=decision.reason))
                    return
                restarting = TaskEvent(ev.RESTARTING, f"Task restarting in {go_duration(decision.delay_ns)}",
                                       restart_reason=decision.reason, start_delay_ns=decision.delay_ns)
                with self._lock:  # Nomad counts the restart and goes back to pending at this event
                    self._state = replace(self._state, state=ev.PENDING, restarts=self._state.restarts + 1,
                                          last_restart_ns=restarting.time_ns, pid=None, start_time=None)
                self._emit(restarting)
                if self._sleep(decision.delay_ns / NS):
                    if self._detached:
                        return
                    self._finish(failed=False, event=TaskEvent(ev.KILLED, "Task successfully killed"))
                    return
                if not self._respawn():
                    return
        finally:
            with self._lock:
                if self._pidfd is not None:
                    os.close(self._pidfd)
                    self._pidfd = None

    def _respawn(self) -> bool:
        """Start the task again; False (the task failed) when it cannot be launched."""
        try:
            self._spawn()
        except OSError as e:
            # A task whose binary vanished cannot recover by waiting: fail it like Nomad does.
            self._finish(failed=True, event=TaskEvent(ev.DRIVER_FAILURE, f"failed to launch command: {e}",
                                                      failed=True))
            return False
        return True

    def _wait_exit(self) -> tuple[int | None, int] | None:
        """Block until the process exits (→ exit code, signal) or we are detached (→ None)."""
        poller = select.poll()
        assert self._pidfd is not None
        poller.register(self._pidfd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)
                if self._detached:
                    return None
            if self._pidfd in ready:
                return self._reap()

    def _reap(self) -> tuple[int | None, int]:
        with self._lock:
            pid = self._pid
            assert pid is not None
            if not self._own_child:
                self._reaped = True
                return None, 0  # not our child: the exit status went to its real parent
            # The leader is a zombie, so its pid (= the group id) cannot be reused yet: kill any
            # processes the task left behind in its group before reaping.
            _killpg(pid, signal.SIGKILL)
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                self._reaped = True
                return None, 0
            self._reaped = True
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            return SIGNAL_BASE + sig, sig
        return os.waitstatus_to_exitcode(status), 0

    def _signal_group(self, sig: int) -> None:
        """`sig` once to every process of the task's group, and to its leader if it left the group.

        The leader normally heads the group (start_new_session), so killpg alone reaches it; sending
        through its pidfd as well would deliver it twice (a task counting SIGHUPs, or a realtime
        signal, sees two)."""
        with self._lock:
            if self._reaped or self._pid is None or self._pidfd is None:
                return
            try:
                heads_group = os.getpgid(self._pid) == self._pid
            except ProcessLookupError:
                heads_group = False
            if not heads_group:
                try:
                    signal.pidfd_send_signal(self._pidfd, sig)
                except ProcessLookupError:
                    pass
            _killpg(self._pid, sig)

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped or detached first; True if interrupted."""
        deadline = time.monotonic() + seconds
        while True:
            if self._stopping or self._detached:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([self._wake_r], [], [], left)
            if r:
                os.read(self._wake_r, 4096)

    def _finish(self, failed: bool, event: TaskEvent | None) -> None:
        with self._lock:
            self._state = replace(self._state, state=ev.DEAD, failed=failed, finished_at_ns=time.time_ns())
        if event is not None:
            self._emit(event)
        self._done.set()

    def _emit(self, event: TaskEvent) -> None:
        with self._lock:
            self._state = replace(self._state, events=(*self._state.events, event)[-ev.MAX_EVENTS:])
        if self._on_event is not None:
            try:
                self._on_event(self.spec.name, event)
            except Exception:  # the supervisor must outlive its listener: it still restarts the task
                log.exception("task %s: event handler failed on %s", self.spec.name, event.type)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def __del__(self) -> None:
        for fd in (getattr(self, "_wake_r", None), getattr(self, "_wake_w", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass


def _is_child(pid: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
        return int(raw[raw.rindex(")") + 2:].split()[1]) == os.getpid()
    except (OSError, ValueError, IndexError):
        return False


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except OSError as e:
        if e.errno not in (errno.ESRCH, errno.EPERM):
            raise
