"""fork_map: the same results as a plain loop, in order, computed in forked workers when safe; and
`render(spec, "json")` over forked workers gives exactly the serial output."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading

import pytest

from nomadmesh.definitions import load_spec
from nomadmesh.definitions.model import Spec
from nomadmesh.errors import RenderError
from nomadmesh.render import parallel, render, render_json
from nomadmesh.render.parallel import fork_map
from support.paths import REPO, SERVICES


def _square_and_pid(n: int) -> tuple[int, int]:
    return n * n, os.getpid()


_FORK_CHILD = """
import json, os
from nomadmesh.render.parallel import fork_map
out = fork_map(lambda n: (n * n, os.getpid()), list(range(50)), workers=2, min_items=2)
print(json.dumps({"out": out, "me": os.getpid()}))
"""


def test_fork_map_keeps_order_and_runs_in_other_processes() -> None:
    # In a fresh interpreter: fork_map rightly never forks a process with other threads, and a
    # test run has them (earlier tests' servers), so this process cannot show the forking path.
    done = subprocess.run([sys.executable, "-c", _FORK_CHILD], capture_output=True, text=True, timeout=60,
                          cwd=REPO, check=True)
    result = json.loads(done.stdout)
    assert [square for square, _ in result["out"]] == [n * n for n in range(50)]
    pids = {pid for _, pid in result["out"]}
    assert pids - {result["me"]}, "no item was computed in a forked worker"


def test_fork_map_raises_the_earliest_items_error() -> None:
    def fail_on_multiples_of_7(n: int) -> int:
        if n and n % 7 == 0:
            raise RenderError(f"item {n}")
        return n

    with pytest.raises(RenderError, match=r"^item 7$"):
        fork_map(fail_on_multiples_of_7, list(range(60)), workers=2, min_items=2)


def test_fork_map_does_not_fork_a_threaded_process() -> None:
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        out = fork_map(_square_and_pid, list(range(20)), workers=2, min_items=2)
    finally:
        release.set()
        other.join()
    assert {pid for _, pid in out} == {os.getpid()}
    assert [square for square, _ in out] == [n * n for n in range(20)]


def test_render_json_over_workers_is_the_serial_output(monkeypatch: pytest.MonkeyPatch) -> None:
    samples = load_spec(SERVICES)
    copies = tuple(dataclasses.replace(s, name=f"{s.name}-{i}") for i in range(4) for s in samples.services)
    spec = Spec(project=samples.project, services=copies, root=samples.root)
    serial = {f"{s.name}.nomad.json": render_json(s, spec.project, spec.root) for s in copies}
    monkeypatch.setattr(parallel, "MIN_ITEMS", 2)
    assert render(spec, "json") == serial
