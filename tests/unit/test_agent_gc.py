"""The forced GC's rules (nomad/gc.py, from Nomad's core_sched.go) on documents in a real state."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nomadmesh.agent.nomad.gc import alloc_collectable, garbage_collect
from nomadmesh.agent.state import State

POLICY = {"Attempts": 2, "Interval": 3_600_000_000_000, "Unlimited": False}


def job(**extra: Any) -> dict[str, Any]:
    return {"ID": "web", "Type": "service", "Status": "running", "Stop": False,
            "TaskGroups": [{"Name": "g", "ReschedulePolicy": POLICY}], **extra}


def alloc(**extra: Any) -> dict[str, Any]:
    return {"ID": "a1", "EvalID": "e1", "JobID": "web", "TaskGroup": "g", "DesiredStatus": "run",
            "ClientStatus": "complete", **extra}


def test_a_failed_allocation_of_a_live_job_waits_for_its_reschedule() -> None:
    assert not alloc_collectable(alloc(ClientStatus="failed"), job())
    assert alloc_collectable(alloc(ClientStatus="failed", NextAllocation="a2"), job())
    assert alloc_collectable(alloc(ClientStatus="failed"), job(Status="dead", Stop=True))
    assert alloc_collectable(alloc(ClientStatus="failed", DesiredStatus="stop"), job())
    assert not alloc_collectable(alloc(ClientStatus="running", DesiredStatus="stop"), job())
    assert alloc_collectable(alloc(), None)


def test_a_live_batch_jobs_results_are_kept_and_a_dead_one_goes(tmp_path: Path) -> None:
    state = State(tmp_path / "s.db")
    state.put("job", "default/web", job(Type="batch", Status="running"))
    state.put("eval", "e1", {"ID": "e1", "JobID": "web", "Type": "batch", "Status": "complete"})
    state.put("alloc", "a1", alloc())
    assert garbage_collect(state).evals == []
    state.put("job", "default/web", job(Type="batch", Status="dead"))
    out = garbage_collect(state)
    assert (out.jobs, out.evals, out.allocs) == (["default/web"], ["e1"], ["a1"])
    assert state.get("job", "default/web") is None and state.values("alloc") == []
    state.close()
