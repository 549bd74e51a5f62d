"""`nomad alloc stop` on the server side: mark the allocation to migrate and evaluate its job, in one
state transaction, as Nomad's Alloc.Stop RPC does (the scheduler then stops it and places a
replacement, nomad/reconcile.py). Signal and restart are the client's: AllocRunner.signal/restart.
"""
from __future__ import annotations

from typing import Any

from nomadmesh.agent.nomad.structs import TRIGGER_ALLOC_STOP, evaluation
from nomadmesh.agent.state import State


class UnknownAllocation(Exception):
    pass


def stop(state: State, alloc_id: str, no_shutdown_delay: bool, reschedule: bool) -> dict[str, Any]:
    """Returns Nomad's AllocStopResponse (EvalID, Index); UnknownAllocation when there is none."""
    with state.write() as txn:
        rec = txn.get("alloc", alloc_id)
        if rec is None:
            raise UnknownAllocation(alloc_id)
        alloc = rec.value
        job = alloc["Job"]
        ev = evaluation(job, TRIGGER_ALLOC_STOP, txn.index, JobModifyIndex=job.get("ModifyIndex", 0))
        transition = dict(alloc.get("DesiredTransition") or {}, Migrate=True, NoShutdownDelay=no_shutdown_delay,
                          Reschedule=reschedule)
        txn.put("alloc", alloc_id, dict(alloc, DesiredTransition=transition, ModifyIndex=txn.index))
        txn.put("eval", ev["ID"], ev)
    return {"EvalID": ev["ID"], "Index": txn.index, "LastContact": 0, "KnownLeader": True}
