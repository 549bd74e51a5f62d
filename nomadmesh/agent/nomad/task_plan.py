"""What starting (or restoring) an allocation does, decided from facts. Pure.

The runner gathers the facts (the allocation, whether its namespace still exists, whether its
tasks' processes still live, what each task's restart block allows), asks these functions, then
applies the answer: set up or keep the network, adopt or start each task in order.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Network(enum.Enum):
    NONE = "none"  # host networking, or nothing to do for a stopping allocation
    SETUP = "setup"  # create the namespace with its port maps
    KEEP = "keep"  # the namespace survived the agent: use it
    LOST = "lost"  # its tasks outlived a namespace deleted while the agent was down: adopt them
    #                (to stop them), start nothing; the scheduler then fails the allocation


@dataclass(frozen=True)
class NetworkFacts:
    bridge: bool  # the group's network mode is bridge
    restore: bool  # the agent restarted and is taking the allocation back
    start_dead: bool  # tasks found dead may be (re)started
    had_network: bool  # the allocation has a NetworkStatus: its namespace was set up once
    agent_stopped: bool  # the agent stopped its tasks on purpose when it last shut down
    namespace_exists: bool
    tasks_alive: bool  # a process of one of its stored task handles still runs


def network(f: NetworkFacts) -> Network:
    if f.bridge and f.restore and f.had_network and not f.agent_stopped and not f.namespace_exists \
            and f.tasks_alive:
        return Network.LOST
    if f.bridge and f.restore and f.had_network and f.namespace_exists:
        return Network.KEEP
    if f.bridge and (f.start_dead or not f.restore):
        return Network.SETUP
    return Network.NONE


def start_order(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prestart tasks first (stable otherwise): a non-sidecar prestart task must finish before the
    main tasks start."""
    return sorted(tasks, key=lambda t: 0 if (t.get("Lifecycle") or {}).get("Hook") == "prestart" else 1)


def waits_for_exit(task: dict[str, Any]) -> bool:
    """A non-sidecar prestart task runs to completion before the next task starts."""
    lc = task.get("Lifecycle") or {}
    return lc.get("Hook") == "prestart" and not lc.get("Sidecar")


class Step(enum.Enum):
    START = "start"  # a fresh start: nothing ran before
    RESTART = "restart"  # found dead after an agent restart: record "Restarting", then start
    RESUME = "resume"  # the agent stopped it on purpose: start again, no restart counted
    SKIP = "skip"  # an allocation being stopped: start nothing
    GIVE_UP = "give-up"  # its restart attempts are spent: record "Not Restarting" (fails the task)


def step(restore: bool, start_dead: bool, agent_stopped: bool, ran_before: bool,
         restart_allowed: bool) -> Step:
    """What to do with a task that was not adopted (no live process to adopt)."""
    if restore and not start_dead:
        return Step.SKIP
    if restore and ran_before:
        if agent_stopped:
            return Step.RESUME
        return Step.RESTART if restart_allowed else Step.GIVE_UP
    return Step.START
