"""Fixtures and hooks only; the code behind them is in tests/support/.

Tests live in tests/unit, tests/agent and tests/e2e by cost (support/markers.py says what each tier may
use); the collection hook below marks each test with its tier, so `pytest tests/unit` is the fast loop and
`-m "not root"` / `-m "not e2e"` select by cost. Tests marked `root` skip when not run as root.

`running_agent` starts `python -m nomadmesh agent --dev ...` and waits until both APIs answer
/v1/status/leader. `agent_factory(*extra_args)` starts more (or differently configured) agents.
Every agent started here is stopped at the end of the test (SIGTERM, then SIGKILL after 30 s).

The suite runs on pytest-xdist workers unless told otherwise (-n0 or -p no:xdist: one process);
support/parallel.py says how tests are grouped and which run alone.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from nomadmesh.agent.state import State
from nomadmesh.deploy.target import consul_client, target_from_env
from support import markers, parallel
from support.agents import RunningAgent, started_agents
from support.paths import TESTS
from support.state import fresh_state as _fresh_state

if TYPE_CHECKING:
    from support.host_mesh import HostMesh


@pytest.hookimpl(tryfirst=True)  # before xdist's, which reads the groups into the test ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its folder's tier; refuse tests outside the tiers and unit tests that cost more."""
    problems = []
    not_root = os.geteuid() != 0
    for item in items:
        tier = markers.tier_of(item.path, TESTS)
        if tier is None:
            problems.append(
                f"{item.nodeid}: put it in tests/unit, tests/agent or tests/e2e (see tests/support/markers.py)")
            continue
        item.add_marker(tier)
        names = {m.name for m in item.iter_markers()}
        if tier == "unit":
            why = markers.unit_violations(names, set(getattr(item, "fixturenames", ())))
            if why:
                problems.append(
                    f"{item.nodeid}: a unit test must not use {', '.join(why)}: move it to tests/agent or tests/e2e")
        if "root" in names and not_root:
            item.add_marker(pytest.mark.skip(reason="needs root"))
    if problems:
        raise pytest.UsageError("tests in the wrong tier:\n  " + "\n  ".join(problems))
    group_for_workers(config, items)


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which turns these options into workers
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Run on parallel.WORKERS workers with grouped scheduling unless -n says otherwise or only
    test files are named (the edit-test loop: starting workers would cost more than they save)."""
    opt = config.option
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput"):
        return  # -p no:xdist, or a worker (its controller decided)
    if opt.numprocesses is None and not (opt.collectonly or opt.usepdb) and not parallel.only_files(opt.file_or_dir):
        opt.numprocesses = parallel.WORKERS
    if opt.numprocesses and opt.dist == "no":
        opt.dist = "loadgroup"
        opt.loadscopereorder = False  # keep the order pytest_collection_modifyitems gives


def group_for_workers(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On xdist workers: each test's group (support/parallel.py), and the heavy groups first."""
    if not hasattr(config, "workerinput"):
        return
    keys = {}
    for item in items:
        # the scope of each fixture the test gets (the last definition of a name is the one in force)
        scopes = {defs[-1].scope for defs in item._fixtureinfo.name2fixturedefs.values()}  # type: ignore[attr-defined]
        group = parallel.group_of(item.nodeid.split("::")[0], item.get_closest_marker("alone") is not None, scopes)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
        keys[item.nodeid] = parallel.schedule_key(markers.tier_of(item.path, TESTS), group)
    items.sort(key=lambda item: keys[item.nodeid])


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # outside pytest-timeout's: waiting here is not the test's time
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """A test marked `alone` runs with no other test beside it on any worker (support/parallel.py)."""
    if not hasattr(item.config, "workerinput"):
        yield  # one process: nothing runs beside anything
        return
    gate = parallel.AloneGate(Path(item.config.option.basetemp).parent)  # the run's dir, shared by its workers
    with gate.enter(alone=item.get_closest_marker("alone") is not None):
        yield


@pytest.fixture
def fresh_state(tmp_path: Path) -> Iterator[State]:
    """An empty agent State in the test's temp dir."""
    yield from _fresh_state(tmp_path)


@pytest.fixture
def agent_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningAgent]]:
    """`agent_factory("--default-policy", "deny", data_dir=None)` starts an agent and returns it."""
    yield from started_agents(tmp_path_factory)


@pytest.fixture(scope="module")
def module_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    """One agent shared by a test module (tests must use names of their own)."""
    factory = started_agents(tmp_path_factory)
    start = next(factory)
    try:
        yield start()
    finally:
        factory.close()


@pytest.fixture
def running_agent(agent_factory: Callable[..., RunningAgent]) -> RunningAgent:
    return agent_factory()


@pytest.fixture
def host_mesh(running_agent: RunningAgent, tmp_path: Path) -> Iterator[HostMesh]:
    """The seed's host workflow (tests/support/host_mesh.py) started on `running_agent`.

    Nothing may be left after it."""
    from support.host_mesh import HostMesh

    mesh = HostMesh(running_agent, tmp_path)
    try:
        yield mesh.start()
    finally:
        mesh.stop()
    assert mesh.leftovers() == []


@pytest.fixture
def consul(module_agent: RunningAgent) -> Iterator[Any]:
    """py-consul on the module's agent, with no intentions before and after each test."""
    client = consul_client(target_from_env({}, consul_addr=module_agent.consul_addr))

    def clear() -> None:
        for entry in client.config.list("service-intentions") or []:
            client.config.delete("service-intentions", entry["Name"])

    clear()
    try:
        yield client
    finally:
        clear()


# Keep subprocess agents out of the environment pytest itself may have (a real cluster's address).
for _var in ("NOMAD_ADDR", "CONSUL_HTTP_ADDR"):
    os.environ.pop(_var, None)
