"""/v1/job/<id>/stable|evaluate|dispatch and /v1/validate/job, as Nomad's job endpoint answers them.

Facts from Nomad's command/agent/job_endpoint.go (jobStable, jobForceEvaluate, ValidateJobRequest) and
nomad/job_endpoint.go (Job.Stable, Job.Evaluate, Job.Validate): request checks are 400s, the RPC's
refusals 500s; validation problems are a 200 whose ValidationErrors lists them.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

from quart import Blueprint, Response, request

from nomadmesh.agent.http.common import read_body
from nomadmesh.agent.http.nomad_ctx import ctx, notify
from nomadmesh.agent.http.nomad_util import HTTPError, go_fields, json_body, reply
from nomadmesh.agent.nomad import dispatch, feasibility, job_actions, spec, task_templates

bp = Blueprint("nomad_job_actions", __name__)

WRITE_FIELDS = ("Region", "Namespace", "AuthToken", "IdempotencyToken", "SecretID")  # structs.WriteRequest
STABLE_FIELDS = ("JobID", "JobVersion", "Stable", *WRITE_FIELDS)
EVALUATE_FIELDS = ("JobID", "EvalOptions", *WRITE_FIELDS)
VALIDATE_FIELDS = ("Job", *WRITE_FIELDS)
# python-nomad puts "idempotency_token" in the body, a name Go's decoder matches to no field: Nomad
# ignores it (the token is WriteRequest.IdempotencyToken or ?idempotency_token=), and so does the agent.
DISPATCH_FIELDS = ("JobID", "Payload", "Meta", "IdPrefixTemplate", "Priority", *WRITE_FIELDS, "idempotency_token")


def _namespace(body: dict[str, Any]) -> str:
    return request.args.get("namespace") or body.get("Namespace") or "default"


def _typed(body: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    negative = isinstance(value, int) and not isinstance(value, bool) and value < 0
    if not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or negative)):
        what = {int: "an unsigned integer", bool: "a bool", str: "a string", dict: "an object"}[kind]
        raise HTTPError(400, f"Request decode failed: {name} must be {what}")
    return value


@bp.route("/v1/job/<path:job_id>/stable", methods=["POST", "PUT"])
def job_stable(job_id: str) -> Response:
    body = json_body()
    body = go_fields(body, STABLE_FIELDS, "job stability request")
    if not _typed(body, "JobID", str, ""):
        raise HTTPError(400, "JobID must be specified")
    if body["JobID"] != job_id:
        raise HTTPError(400, "Job ID does not match")
    version = _typed(body, "JobVersion", int, 0)
    stable = _typed(body, "Stable", bool, False)
    try:
        index = job_actions.set_stable(ctx().state, job_id, version, stable, _namespace(body))
    except job_actions.ActionRefused as e:
        raise HTTPError(500, str(e)) from None
    return reply({"Index": index, "LastContact": 0, "KnownLeader": True}, index)


@bp.route("/v1/job/<path:job_id>/evaluate", methods=["POST", "PUT"])
def job_evaluate(job_id: str) -> Response:
    force, body = False, dict[str, Any]()
    if read_body().strip():  # Nomad still takes the old body-less form (python-nomad sends it)
        body = json_body()
        body = go_fields(body, EVALUATE_FIELDS, "job evaluate request")
        if not _typed(body, "JobID", str, ""):
            raise HTTPError(400, "Job ID must be specified")
        if body["JobID"] != job_id:
            raise HTTPError(400, "JobID not same as job name")
        options = _typed(body, "EvalOptions", dict, {})
        options = go_fields(options, ("ForceReschedule",), "EvalOptions")
        force = _typed(options, "ForceReschedule", bool, False)
    try:
        out = job_actions.evaluate(ctx().state, _namespace(body), job_id, force)
    except job_actions.ActionRefused as e:
        raise HTTPError(500, str(e)) from None
    notify()
    return reply(out, out["Index"])


def _multierror(errors: list[str]) -> str:
    """go-multierror's text, as Nomad's Validate puts it in `Error`."""
    points = "\n\t".join(f"* {e}" for e in errors)
    n = len(errors)
    return f"{n} error{'s' if n != 1 else ''} occurred:\n\t{points}\n\n"


@bp.route("/v1/validate/job", methods=["POST", "PUT"])
def validate_job() -> Response:
    body = json_body()
    body = go_fields(body, VALIDATE_FIELDS, "job validate request")
    if body.get("Job") is None:
        raise HTTPError(400, "Job must be specified")
    errors: list[str] = []
    try:
        job = spec.prepare(body["Job"])
    except spec.SpecInputError as e:
        raise HTTPError(400, str(e)) from None
    except spec.SpecInvalid as e:
        errors = list(e.errors)
    else:
        # what the agent would refuse at register is reported here too, never waved through
        refused = task_templates.refusal(job) or feasibility.unevaluated_constraint(job)
        if refused:
            errors = [refused]
    return reply({"DriverConfigValidated": True, "ValidationErrors": errors or None,
                  "Error": _multierror(errors) if errors else "", "Warnings": ""})


def _payload(body: dict[str, Any]) -> bytes:
    raw = _typed(body, "Payload", str, "")  # Go's []byte: base64 in JSON
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPError(400, "Request decode failed: Payload must be base64") from None


@bp.route("/v1/job/<path:job_id>/dispatch", methods=["POST", "PUT"])
def job_dispatch(job_id: str) -> Response:
    body = json_body()
    body = go_fields(body, DISPATCH_FIELDS, "job dispatch request")
    if _typed(body, "JobID", str, "") not in ("", job_id):
        raise HTTPError(400, "Job ID does not match")
    meta = _typed(body, "Meta", dict, {})
    if not all(isinstance(v, str) for v in meta.values()):
        raise HTTPError(400, "Request decode failed: Meta must map keys to strings")
    token = request.args.get("idempotency_token") or _typed(body, "IdempotencyToken", str, "")
    try:
        out = dispatch.dispatch(ctx().state, _namespace(body), job_id, _payload(body), meta, token,
                                _typed(body, "Priority", int, 0),
                                _typed(body, "IdPrefixTemplate", str, ""))
    except dispatch.DispatchRefused as e:
        raise HTTPError(500, str(e)) from None
    notify()
    return reply(out, out["Index"])


@bp.route("/v1/job/<path:job_id>/dispatch/payload", methods=["POST", "PUT"])
def job_dispatch_raw_payload(job_id: str) -> Response:
    """Nomad's dispatch with the request body as the payload, as is (no meta; the token by query)."""
    token = request.args.get("idempotency_token") or ""
    try:
        out = dispatch.dispatch(ctx().state, _namespace({}), job_id, read_body(), {}, token)
    except dispatch.DispatchRefused as e:
        raise HTTPError(500, str(e)) from None
    notify()
    return reply(out, out["Index"])


@bp.route("/v1/job/<path:job_id>/stable", methods=["GET", "DELETE"])
@bp.route("/v1/job/<path:job_id>/evaluate", methods=["GET", "DELETE"])
@bp.route("/v1/job/<path:job_id>/dispatch", methods=["GET", "DELETE"])
def job_action_wrong_method(job_id: str) -> Response:
    # Nomad routes these suffixes to their action whatever the method (so not to a job "<id>/stable")
    raise HTTPError(405, "Invalid method")
