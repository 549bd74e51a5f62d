"""What starting or restoring an allocation does, decided from facts without processes
(nomad/task_plan.py; the runner gathers the facts and applies the answer)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from nomadmesh.agent.nomad import task_plan
from nomadmesh.agent.nomad.task_plan import Network, NetworkFacts, Step

FRESH = NetworkFacts(bridge=True, restore=False, start_dead=True, had_network=False, agent_stopped=False,
                     namespace_exists=False, tasks_alive=False)
RESTORED = replace(FRESH, restore=True, had_network=True)


@pytest.mark.parametrize("facts, expected", [
    (FRESH, Network.SETUP),
    (replace(FRESH, bridge=False), Network.NONE),
    (replace(RESTORED, namespace_exists=True), Network.KEEP),
    (replace(RESTORED, tasks_alive=True), Network.LOST),  # namespace deleted while the agent was down
    (replace(RESTORED, tasks_alive=True, agent_stopped=True), Network.SETUP),  # the agent stopped them itself
    (RESTORED, Network.SETUP),  # gone with its tasks: set it up again
    (replace(RESTORED, start_dead=False), Network.NONE),  # being stopped: nothing to set up
])
def test_network(facts: NetworkFacts, expected: Network) -> None:
    assert task_plan.network(facts) is expected


@pytest.mark.parametrize("restore, start_dead, agent_stopped, ran_before, allowed, expected", [
    (False, True, False, False, False, Step.START),
    (True, False, False, True, True, Step.SKIP),
    (True, True, False, True, True, Step.RESTART),
    (True, True, False, True, False, Step.GIVE_UP),
    (True, True, True, True, False, Step.RESUME),  # stopped on purpose: no attempt counted
    (True, True, False, False, False, Step.START),  # never ran
])
def test_step(restore: bool, start_dead: bool, agent_stopped: bool, ran_before: bool, allowed: bool,
              expected: Step) -> None:
    assert task_plan.step(restore, start_dead, agent_stopped, ran_before, allowed) is expected


def test_prestart_tasks_start_first_and_only_non_sidecars_are_waited_for() -> None:
    main = {"Name": "main"}
    sidecar = {"Name": "envoy", "Lifecycle": {"Hook": "prestart", "Sidecar": True}}
    init = {"Name": "init", "Lifecycle": {"Hook": "prestart"}}
    assert [t["Name"] for t in task_plan.start_order([main, sidecar, init])] == ["envoy", "init", "main"]
    assert [task_plan.waits_for_exit(t) for t in (main, sidecar, init)] == [False, False, True]
