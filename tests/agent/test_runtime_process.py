"""Supervised task processes: restart policy, kill_timeout, log files, adoption after an agent restart.

Real processes throughout; every test stops what it started (fixture `tasks` stops leftovers).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nomadmesh.agent.runtime import events as ev
from nomadmesh.agent.runtime.events import TaskEvent
from nomadmesh.agent.runtime.process import ProcessIdentity, TaskProcess, TaskSpec, proc_start_time, signal_number
from nomadmesh.agent.runtime.restarts import NS, RestartPolicy
from nomadmesh.agent.runtime.taskdir import AllocDirs
from support.paths import REPO
from support.waiting import wait_until

PY = sys.executable
BASE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def alive(pid: int) -> bool:
    return proc_start_time(pid) is not None


@pytest.fixture
def tasks() -> Iterator[list[TaskProcess]]:
    started: list[TaskProcess] = []
    try:
        yield started
    finally:
        for t in started:
            t.stop(kill_signal=signal.SIGKILL, kill_timeout_s=1)


@pytest.fixture
def make_spec(tmp_path: Path) -> Callable[..., TaskSpec]:
    adir = AllocDirs(tmp_path).build("a1", ["t"])

    def make(code: str, **over) -> TaskSpec:
        base = {"name": "t", "argv": (PY, "-c", textwrap.dedent(code)), "env": dict(BASE_ENV),
                "cwd": adir.task("t").root, "stdout_path": adir.stdout_path("t"),
                "stderr_path": adir.stderr_path("t")}
        base.update(over)
        return TaskSpec(**base)

    return make


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, TaskEvent]] = []

    def __call__(self, task: str, event: TaskEvent) -> None:
        self.events.append((task, event))

    def types(self) -> list[str]:
        return [e.type for _, e in self.events]


def test_exit_1_restarts_attempts_times_then_fails(make_spec, tasks) -> None:
    rec = Recorder()
    spec = make_spec("import sys; print('run'); sys.exit(1)",
                     restart=RestartPolicy(attempts=2, interval_ns=600 * NS, delay_ns=NS // 20, mode="fail"))
    fds_before = len(os.listdir("/proc/self/fd"))
    tp = TaskProcess(spec, rec)
    tasks.append(tp)
    tp.start()
    assert tp.wait(15), "task never reached its final state"
    tp._thread.join(5)
    # Only the wake pipe stays open while the object lives: no pidfd or log handle leaks per restart.
    assert len(os.listdir("/proc/self/fd")) - fds_before == 2
    st = tp.state()
    assert (st.state, st.failed, st.restarts) == ("dead", True, 2)
    types = rec.types()
    assert types[:3] == [ev.RECEIVED, ev.TASK_SETUP, ev.STARTED]
    assert types.count(ev.STARTED) == 3 and types.count(ev.TERMINATED) == 3
    assert types.count(ev.RESTARTING) == 2 and types[-1] == ev.NOT_RESTARTING
    last = rec.events[-1][1]
    assert last.failed and last.message == 'Exceeded allowed attempts 2 in interval 10m0s and mode is "fail"'
    term = next(e for _, e in rec.events if e.type == ev.TERMINATED)
    assert term.exit_code == 1 and term.message == "Exit Code: 1"
    assert spec.stdout_path.read_text() == "run\n" * 3  # every run appended to the same file
    nomad = st.to_nomad()
    assert nomad["State"] == "dead" and nomad["Failed"] is True and nomad["Restarts"] == 2
    assert nomad["Events"][-1]["FailsTask"] is True


def test_mode_delay_keeps_restarting_after_attempts(make_spec, tasks) -> None:
    rec = Recorder()
    # 1 attempt per 0.3s window: the second exit in a window waits for the window to end, then goes on.
    spec = make_spec("import sys; sys.exit(3)",
                     restart=RestartPolicy(attempts=1, interval_ns=3 * NS // 10, delay_ns=NS // 100, mode="delay"))
    tp = TaskProcess(spec, rec)
    tasks.append(tp)
    tp.start()
    wait_until(lambda: tp.state().restarts >= 5, 15, "5 restarts in delay mode")
    assert not tp.wait(0) and tp.state().failed is False
    reasons = {e.restart_reason for _, e in rec.events if e.type == ev.RESTARTING}
    assert reasons == {"Restart within policy", "Exceeded allowed attempts, applying a delay"}
    assert ev.NOT_RESTARTING not in rec.types()
    tp.stop()
    st = tp.state()
    assert (st.state, st.failed) == ("dead", False)
    assert rec.types()[-1] == ev.KILLED


def test_batch_exit_0_completes_without_restart(make_spec, tasks) -> None:
    tp = TaskProcess(make_spec("print('ok')", job_type="batch",
                               restart=RestartPolicy(attempts=3, interval_ns=600 * NS, delay_ns=NS // 20)))
    tasks.append(tp)
    tp.start()
    assert tp.wait(10)
    st = tp.state()
    assert (st.state, st.failed, st.restarts) == ("dead", False, 0)


def test_stop_sends_kill_signal_first(make_spec, tasks) -> None:
    rec = Recorder()
    code = """
        import signal, sys, time
        def bye(signum, frame):
            print('got', signum, flush=True); sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        print('ready', flush=True)
        while True: time.sleep(0.05)
    """
    spec = make_spec(code, kill_signal=signal_number("SIGTERM"), kill_timeout_s=5)
    tp = TaskProcess(spec, rec)
    tasks.append(tp)
    tp.start()
    wait_until(lambda: "ready" in spec.stdout_path.read_text(), what="task ready")
    t0 = time.monotonic()
    tp.stop()
    assert time.monotonic() - t0 < 4  # exited on SIGTERM, no waiting for the timeout
    assert f"got {int(signal.SIGTERM)}" in spec.stdout_path.read_text()
    assert rec.types()[-3:] == [ev.KILLING, ev.TERMINATED, ev.KILLED]
    assert rec.events[-3][1].message == "Sent interrupt. Waiting 5s before force killing"
    assert (tp.state().state, tp.state().failed) == ("dead", False)


def test_kill_timeout_escalates_to_sigkill_for_the_whole_group(make_spec, tasks) -> None:
    rec = Recorder()
    # The task ignores SIGINT and has a child in its process group that ignores it too.
    code = f"""
        import signal, subprocess, sys, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        child = subprocess.Popen([{PY!r}, '-c',
                                  'import signal,time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)'])
        print(child.pid, flush=True)
        while True: time.sleep(0.05)
    """
    spec = make_spec(code, kill_timeout_s=0.7)
    tp = TaskProcess(spec, rec)
    tasks.append(tp)
    tp.start()
    wait_until(lambda: spec.stdout_path.read_text().strip().isdigit(), what="child pid")
    child = int(spec.stdout_path.read_text())
    pid = tp.state().pid
    assert pid and alive(pid) and alive(child)
    t0 = time.monotonic()
    tp.stop()
    took = time.monotonic() - t0
    assert 0.6 <= took < 4, f"stop took {took:.2f}s for a kill_timeout of 0.7s"
    term = [e for _, e in rec.events if e.type == ev.TERMINATED][-1]
    assert (term.exit_code, term.signal) == (128 + 9, 9)
    assert not alive(pid)
    wait_until(lambda: not alive(child), 5, "grandchild killed with the group")


def test_leftover_group_members_are_killed_when_the_task_exits(make_spec, tasks) -> None:
    code = f"""
        import subprocess, sys
        child = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)'])
        print(child.pid, flush=True)
        sys.exit(0)
    """
    spec = make_spec(code, job_type="batch")
    tp = TaskProcess(spec)
    tasks.append(tp)
    tp.start()
    assert tp.wait(10)
    child = int(spec.stdout_path.read_text())
    wait_until(lambda: not alive(child), 5, "orphaned group member killed")


def test_missing_binary_is_a_driver_failure(make_spec, tasks) -> None:
    rec = Recorder()
    tp = TaskProcess(make_spec("", argv=("/nonexistent/bin",)), rec)
    tasks.append(tp)
    tp.start()
    assert tp.wait(1)
    assert (tp.state().state, tp.state().failed) == ("dead", True)
    assert rec.types()[-1] == ev.DRIVER_FAILURE and "nonexistent" in rec.events[-1][1].message


def test_env_and_cwd_reach_the_task(make_spec, tasks) -> None:
    spec = make_spec("import os; print(os.environ['NOMAD_TASK_NAME'], os.getcwd())", job_type="batch",
                     env={**BASE_ENV, "NOMAD_TASK_NAME": "t"})
    tp = TaskProcess(spec)
    tasks.append(tp)
    tp.start()
    assert tp.wait(10)
    assert spec.stdout_path.read_text().split() == ["t", str(spec.cwd)]


def test_adopt_after_supervisor_is_discarded(make_spec, tasks) -> None:
    spec = make_spec("import time\nprint('up', flush=True)\nwhile True: time.sleep(0.05)")
    first = TaskProcess(spec)
    first.start()
    wait_until(lambda: "up" in spec.stdout_path.read_text(), what="task up")
    ident = first.identity
    assert ident is not None and ident.start_time == proc_start_time(ident.pid)
    first.detach()  # what an agent shutting down without stopping tasks does
    del first
    assert alive(ident.pid)

    rec = Recorder()
    adopted = TaskProcess.adopt(spec, ident, rec, restarts=4, started_at_ns=123)
    assert adopted is not None
    tasks.append(adopted)
    st = adopted.state()
    assert (st.state, st.pid, st.restarts, st.started_at_ns) == ("running", ident.pid, 4, 123)
    adopted.stop()
    assert not alive(ident.pid)
    assert rec.types() == [ev.KILLING, ev.TERMINATED, ev.KILLED]
    assert adopted.state().state == "dead"


def test_adopt_refuses_a_gone_or_reused_pid(make_spec) -> None:
    p = subprocess.Popen([PY, "-c", "pass"])
    p.wait()
    assert TaskProcess.adopt(make_spec("pass"), ProcessIdentity(p.pid, 1)) is None
    me = ProcessIdentity(os.getpid(), proc_start_time(os.getpid()) + 1)  # right pid, wrong start time
    assert TaskProcess.adopt(make_spec("pass"), me) is None


AGENT = """
import json, sys
from pathlib import Path
from nomadmesh.agent.runtime.process import TaskProcess, TaskSpec
spec = TaskSpec(name="t", argv=(sys.executable, "-c", "import time\\nwhile True: time.sleep(0.05)"),
                env={"PATH": "/usr/bin:/bin"}, cwd=Path(sys.argv[1]), stdout_path=Path(sys.argv[1]) / "out",
                stderr_path=Path(sys.argv[1]) / "err")
tp = TaskProcess(spec)
tp.start()
s = tp.state()
print(json.dumps([s.pid, s.start_time]), flush=True)
import time
time.sleep(60)
"""


def test_task_survives_agent_sigkill_and_is_adopted_then_restarted(make_spec, tasks, tmp_path: Path) -> None:
    """A real agent process starts a task and is SIGKILLed; we adopt the orphan (not our child)."""
    agent = subprocess.Popen([PY, "-c", AGENT, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             cwd=REPO)
    try:
        import json
        pid, start_time = json.loads(agent.stdout.readline())
    finally:
        agent.kill()
        agent.wait()
    try:
        assert alive(pid), "the task died with its agent"
        rec = Recorder()
        spec = make_spec("import time\nwhile True: time.sleep(0.05)",
                         restart=RestartPolicy(attempts=1, interval_ns=600 * NS, delay_ns=NS // 20))
        adopted = TaskProcess.adopt(spec, ProcessIdentity(pid, start_time), rec)
        assert adopted is not None
        tasks.append(adopted)
        os.kill(pid, signal.SIGKILL)  # the adopted task crashes: exit status unknown, restart per policy
        wait_until(lambda: adopted.state().restarts == 1 and adopted.state().state == "running", 10,
                   "restart after the adopted task died")
        term = next(e for _, e in rec.events if e.type == ev.TERMINATED)
        assert term.exit_code is None and "unknown" in term.message
        assert adopted.state().pid != pid
    finally:
        if proc_start_time(pid) == start_time:  # never signal a pid that may have been reused
            os.kill(pid, signal.SIGKILL)


def test_a_signal_reaches_the_task_once(make_spec, tasks) -> None:
    # Realtime signals queue instead of coalescing, so a signal sent twice is seen twice; the
    # marker (a higher realtime signal, delivered after every lower pending one) closes the count.
    code = """
        import signal
        lo, hi = signal.SIGRTMIN, signal.SIGRTMIN + 1
        signal.pthread_sigmask(signal.SIG_BLOCK, [lo, hi])
        print("ready", flush=True)
        while True:
            info = signal.sigtimedwait([lo, hi], 5)
            if info is not None:
                print("marker" if info.si_signo == hi else "signal", flush=True)
    """
    spec = make_spec(code)
    t = TaskProcess(spec)
    tasks.append(t)
    t.start()
    wait_until(lambda: spec.stdout_path.read_text() == "ready\n", 10)
    t.signal(signal.SIGRTMIN)
    wait_until(lambda: "signal" in spec.stdout_path.read_text(), 10)
    t.signal(signal.SIGRTMIN + 1)
    out = wait_until(lambda: (text := spec.stdout_path.read_text()).endswith("marker\n") and text, 10)
    assert out == "ready\nsignal\nmarker\n"
