"""/v1/deployment/promote|fail|pause|allocation-health/<id>, as Nomad's deployment endpoint answers them.

Facts from Nomad's command/agent/deployment_endpoint.go: fail reads no body; promote, pause and
allocation-health need a body whose DeploymentID matches the path (400s); the RPC's refusals
(unknown or terminal deployment, unknown allocation, unhealthy canaries) are 500s with Nomad's text.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import Blueprint, Response

from nomadmesh.agent.http.nomad_ctx import ctx, notify
from nomadmesh.agent.http.nomad_util import HTTPError, go_fields, json_body, reply
from nomadmesh.agent.nomad import deployment_actions as actions

bp = Blueprint("nomad_deployment_actions", __name__)

WRITE_FIELDS = ("Region", "Namespace", "AuthToken", "IdempotencyToken", "SecretID")  # structs.WriteRequest
PAUSE_FIELDS = ("DeploymentID", "Pause", *WRITE_FIELDS)
PROMOTE_FIELDS = ("DeploymentID", "All", "Groups", "PromotedAt", *WRITE_FIELDS)
HEALTH_FIELDS = ("DeploymentID", "HealthyAllocationIDs", "UnhealthyAllocationIDs", *WRITE_FIELDS)


def _body_for(dep_id: str, fields: tuple[str, ...], what: str) -> dict[str, Any]:
    body = json_body()
    body = go_fields(body, fields, what)
    if not body.get("DeploymentID"):
        raise HTTPError(400, "DeploymentID must be specified")
    if body["DeploymentID"] != dep_id:
        raise HTTPError(400, "Deployment ID does not match")
    return body


def _act(action: Callable[[], dict[str, Any]]) -> Response:
    """Run the deployment action; Nomad answers its refusals with a 500 carrying the text."""
    try:
        out = action()
    except actions.DeploymentRefused as e:
        raise HTTPError(500, str(e)) from None
    notify()
    return reply(out, out["Index"])


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise HTTPError(400, f"Request decode failed: {name} must be a bool")
    return value


@bp.route("/v1/deployment/fail/<dep_id>", methods=["POST", "PUT"])
def fail_deployment(dep_id: str) -> Response:
    return _act(lambda: actions.fail(ctx().state, dep_id))


@bp.route("/v1/deployment/promote/<dep_id>", methods=["POST", "PUT"])
def promote_deployment(dep_id: str) -> Response:
    body = _body_for(dep_id, PROMOTE_FIELDS, "deployment promote request")
    groups = None if _flag(body, "All") else _ids(body, "Groups")
    return _act(lambda: actions.promote(ctx().state, dep_id, groups))


@bp.route("/v1/deployment/pause/<dep_id>", methods=["POST", "PUT"])
def pause_deployment(dep_id: str) -> Response:
    body = _body_for(dep_id, PAUSE_FIELDS, "deployment pause request")
    paused = _flag(body, "Pause")
    return _act(lambda: actions.pause(ctx().state, dep_id, paused))


def _ids(body: dict[str, Any], name: str) -> list[str]:
    ids = body.get(name) or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise HTTPError(400, f"Request decode failed: {name} must be a list of strings")
    return ids


@bp.route("/v1/deployment/allocation-health/<dep_id>", methods=["POST", "PUT"])
def deployment_allocation_health(dep_id: str) -> Response:
    body = _body_for(dep_id, HEALTH_FIELDS, "deployment allocation health request")
    healthy, unhealthy = _ids(body, "HealthyAllocationIDs"), _ids(body, "UnhealthyAllocationIDs")
    return _act(lambda: actions.set_alloc_health(ctx().state, dep_id, healthy, unhealthy))
