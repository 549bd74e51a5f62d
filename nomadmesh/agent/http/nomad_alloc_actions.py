"""/v1/allocation/<id>/stop and /v1/client/allocation/<id>/signal|restart, as Nomad answers them.

Facts from Nomad's command/agent/alloc_endpoint.go (allocStop, allocSignal, allocRestart), nomad/
alloc_endpoint.go (Alloc.Stop) and client/ (Client.RestartAllocation, allocRunner.Signal): an unknown
allocation is a 404 ("allocation not found" for stop, `Unknown allocation "<id>"` for the client
actions); what the client refuses is a 500 with its text.
"""
from __future__ import annotations

from typing import Any

from quart import Blueprint, Response

from nomadmesh.agent.http.common import read_body
from nomadmesh.agent.http.nomad_ctx import ctx, notify, scheduler
from nomadmesh.agent.http.nomad_util import HTTPError, go_fields, json_body, parse_bool, reply
from nomadmesh.agent.nomad import alloc_actions
from nomadmesh.agent.nomad.runner import AllocRunner, ClientActionError

bp = Blueprint("nomad_alloc_actions", __name__)

QUERY_FIELDS = ("Region", "Namespace", "AuthToken", "SecretID", "AllocID", "NodeID")
SIGNAL_FIELDS = ("Task", "Signal", *QUERY_FIELDS)
RESTART_FIELDS = ("TaskName", "AllTasks", *QUERY_FIELDS)


@bp.route("/v1/allocation/<alloc_id>/stop", methods=["POST", "PUT"])
def stop_allocation(alloc_id: str) -> Response:
    no_delay, resched = parse_bool("no_shutdown_delay"), parse_bool("reschedule")
    try:
        out = alloc_actions.stop(ctx().state, alloc_id, no_delay, resched)
    except alloc_actions.UnknownAllocation:
        raise HTTPError(404, "allocation not found") from None
    notify()
    return reply(out, out["Index"])


def _client_alloc(alloc_id: str) -> tuple[dict[str, Any], AllocRunner | None]:
    rec = ctx().state.get("alloc", alloc_id)
    if rec is None:
        raise HTTPError(404, f'Unknown allocation "{alloc_id}"')
    return rec.value, scheduler().alloc_runner(alloc_id)


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name) or ""
    if not isinstance(value, str):
        raise HTTPError(400, f"Failed to decode body: {name} must be a string")
    return value


def _task_names(alloc: dict[str, Any]) -> list[str]:
    groups: list[dict[str, Any]] = alloc["Job"]["TaskGroups"]
    tg = next((g for g in groups if g["Name"] == alloc["TaskGroup"]), None)
    return [t["Name"] for t in (tg or {}).get("Tasks") or []]


@bp.route("/v1/client/allocation/<alloc_id>/signal", methods=["POST", "PUT"])
def signal_allocation(alloc_id: str) -> Response:
    body = json_body()
    body = go_fields(body, SIGNAL_FIELDS, "alloc signal request")
    task, sig = _text(body, "Task"), _text(body, "Signal")
    alloc, runner = _client_alloc(alloc_id)
    try:
        if runner is None:  # the allocation's tasks have all ended
            if task and task not in _task_names(alloc):
                raise ClientActionError("Task not found")
            raise ClientActionError("Task not running")
        runner.signal(task, sig)
    except ClientActionError as e:
        raise HTTPError(500, str(e)) from None
    return reply({"Index": 0})  # structs.GenericResponse


@bp.route("/v1/client/allocation/<alloc_id>/restart", methods=["POST", "PUT"])
def restart_allocation(alloc_id: str) -> Response:
    body: dict[str, Any] = json_body() if read_body().strip() else {}  # Nomad takes an empty body
    body = go_fields(body, RESTART_FIELDS, "alloc restart request")
    task, all_tasks = _text(body, "TaskName"), body.get("AllTasks") or False
    if not isinstance(all_tasks, bool):
        raise HTTPError(400, "Failed to decode body: AllTasks must be a bool")
    alloc, runner = _client_alloc(alloc_id)
    try:
        if runner is None:
            if all_tasks and task:
                raise ClientActionError("task name cannot be set when restarting all tasks")
            if task and task not in _task_names(alloc):
                raise ClientActionError(f"Could not find task runner for task: {task}")
            raise ClientActionError("Task not running" if task else "restart of an alloc that should not run")
        runner.restart(task, all_tasks)
    except ClientActionError as e:
        raise HTTPError(500, str(e)) from None
    return reply({"Index": 0})  # structs.GenericResponse
