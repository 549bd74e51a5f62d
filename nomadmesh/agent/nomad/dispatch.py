"""`nomad job dispatch`: a child job from a parameterized parent, as Nomad's Job.Dispatch RPC makes it.

Facts from Nomad's nomad/job_endpoint.go (Dispatch, validateDispatchRequest) and structs
(DispatchedID, CheckIdempotencyToken): the payload's and meta's checks in Nomad's order and words;
with an IdempotencyToken already used by a child of the parent, that child is returned and nothing
is written; the child is the parent with ID `<parent>/dispatch-<unix>-<8 hex>`, ParentID, Dispatched,
the dispatch meta merged over the parent's, the payload snappy-compressed, and a register evaluation.
"""
from __future__ import annotations

import base64
import copy
import json
import time
import uuid
from typing import Any

from nomadmesh.agent.nomad import jobs
from nomadmesh.agent.nomad.snappy_block import compress
from nomadmesh.agent.nomad.structs import TRIGGER_REGISTER, evaluation, job_key, now_ns
from nomadmesh.agent.state import State

PAYLOAD_LIMIT = 16 * 1024  # Nomad's DispatchPayloadSizeLimit
MAX_PRIORITY = 100  # the server's default job_max_priority


class DispatchRefused(Exception):
    """Nomad answers these with a 500 carrying this text."""


def _go_list(keys: list[str]) -> str:
    return "[" + " ".join(keys) + "]"  # Go's %v of a []string


def check_request(parent: dict[str, Any], payload: bytes, meta: dict[str, str], priority: int) -> None:
    config = parent["ParameterizedJob"]
    if config.get("Payload") == "required" and not payload:
        raise DispatchRefused("Payload is not provided but required by parameterized job")
    if config.get("Payload") == "forbidden" and payload:
        raise DispatchRefused("Payload provided but forbidden by parameterized job")
    if len(payload) > PAYLOAD_LIMIT:
        raise DispatchRefused(f"Payload exceeds maximum size; {len(payload)} > {PAYLOAD_LIMIT}")
    required, optional = config.get("MetaRequired") or [], config.get("MetaOptional") or []
    unpermitted = sorted(k for k in meta if k not in required and k not in optional)
    if unpermitted:
        raise DispatchRefused(f"Dispatch request included unpermitted metadata keys: {_go_list(unpermitted)}")
    missing = sorted(k for k in required if k not in meta)
    if missing:
        raise DispatchRefused(f"Dispatch did not provide required meta keys: {_go_list(missing)}")
    if not 1 <= priority <= MAX_PRIORITY:
        raise DispatchRefused(f"dispatch job priority must be between [1, {MAX_PRIORITY}]")


def dispatched_id(parent_id: str, prefix_template: str, unix: int) -> str:
    short = uuid.uuid4().hex[:8]
    middle = f"{prefix_template}-" if prefix_template else ""
    return f"{parent_id}/dispatch-{middle}{unix}-{short}"


def dispatch(state: State, namespace: str, parent_id: str, payload: bytes, meta: dict[str, str], token: str = "",
             priority: int = 0, prefix_template: str = "") -> dict[str, Any]:
    """Register the child job (and its evaluation) in one transaction; Nomad's JobDispatchResponse."""
    with state.write() as txn:
        rec = txn.get("job", job_key(namespace, parent_id))
        if rec is None:
            raise DispatchRefused("parameterized job not found")
        parent = rec.value
        if not jobs.is_parameterized(parent):
            raise DispatchRefused(f"Specified job {json.dumps(parent_id)} is not a parameterized job")
        if parent.get("Stop"):
            raise DispatchRefused(f"Specified job {json.dumps(parent_id)} is stopped")
        priority = priority or int(parent.get("Priority") or 50)
        check_request(parent, payload, meta, priority)
        if token:
            for r in txn.records("job", job_key(namespace, parent_id) + "/"):
                if r.value.get("ParentID") == parent_id and r.value.get("DispatchIdempotencyToken") == token:
                    # a retried request: the child it made before, nothing new
                    return {"DispatchedJobID": r.value["ID"], "EvalID": "", "EvalCreateIndex": 0,
                            "JobCreateIndex": r.value["CreateIndex"], "Index": r.value["ModifyIndex"],
                            "LastContact": 0, "KnownLeader": True}
        child = {k: copy.deepcopy(v) for k, v in parent.items() if not k.startswith("_")}
        child_id = dispatched_id(parent_id, prefix_template, int(time.time()))
        child.update(ID=child_id, Name=child_id, ParentID=parent_id, Dispatched=True, Status="",
                     StatusDescription="", DispatchIdempotencyToken=token, Priority=priority,
                     Meta={**(parent.get("Meta") or {}), **meta} or None,
                     Payload=base64.b64encode(compress(payload)).decode())
        child.update(Version=0, Stable=False, SubmitTime=now_ns(), CreateIndex=txn.index, ModifyIndex=txn.index,
                     JobModifyIndex=txn.index, Status="pending")
        txn.put("job", job_key(namespace, child_id), child)
        txn.put("job_version", jobs.version_key(namespace, child_id, 0), child)
        ev = evaluation(child, TRIGGER_REGISTER, txn.index)
        txn.put("eval", ev["ID"], ev)
    return {"DispatchedJobID": child_id, "EvalID": ev["ID"], "EvalCreateIndex": txn.index,
            "JobCreateIndex": txn.index, "Index": txn.index, "LastContact": 0, "KnownLeader": True}
