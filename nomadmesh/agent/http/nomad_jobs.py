"""/v1/jobs and /v1/job/<id>/...: register, parse, read, plan, stop/purge, revert, versions and children."""
from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request

from nomadmesh.agent.http.nomad_ctx import ctx, notify
from nomadmesh.agent.http.nomad_util import (
    HTTPError,
    blocking,
    check_fields,
    in_namespace,
    json_body,
    parse_bool,
    read_endpoint,
    reply,
    request_namespace,
    strip_private,
)
from nomadmesh.agent.nomad import (
    admission,
    canaries,
    feasibility,
    host_volumes,
    jobs as jobstore,
    planner,
    spec,
    task_artifacts,
    task_templates,
)
from nomadmesh.agent.nomad.structs import alloc_stub, deployment_json, job_key, key_of_job, namespace_of, owner_key

bp = Blueprint("nomad_jobs", __name__)

REGISTER_FIELDS = ("Job", "EnforceIndex", "JobModifyIndex", "PolicyOverride", "PreserveCounts",
                   "EvalPriority", "Submission", "Region", "Namespace", "SecretID", "AuthToken")
PLAN_FIELDS = ("Job", "Diff", "PolicyOverride", "Region", "Namespace", "SecretID", "AuthToken")
PARSE_FIELDS = ("JobHCL", "Variables", "Canonicalize", "HCLv1")
# structs.JobRevertRequest with its WriteRequest; Consul/Vault tokens are what older clients still send.
REVERT_FIELDS = ("JobID", "JobVersion", "EnforcePriorVersion", "ConsulToken", "VaultToken",
                 "Region", "Namespace", "AuthToken", "IdempotencyToken", "SecretID")


def _submission(body: dict[str, Any]) -> dict[str, Any] | None:
    """The register request's `Submission` (api.JobSubmission), checked; None when absent."""
    sub = body.get("Submission")
    if sub is None:
        return None
    if not isinstance(sub, dict):
        raise HTTPError(400, "Request decode failed: Submission must be an object")
    check_fields(sub, jobstore.SUBMISSION_FIELDS, "job submission")
    source, fmt = sub.get("Source", ""), sub.get("Format", "")
    flags, variables = sub.get("VariableFlags") or {}, sub.get("Variables", "")
    if not isinstance(source, str) or not isinstance(fmt, str) or not isinstance(variables, str):
        raise HTTPError(400, "Request decode failed: Submission Source, Format and Variables must be strings")
    if not isinstance(flags, dict) or not all(isinstance(v, str) for v in flags.values()):
        raise HTTPError(400, "Request decode failed: Submission VariableFlags must map names to strings")
    return {"Source": source, "Format": fmt, "VariableFlags": flags or None, "Variables": variables}


def _job_or_404(job_id: str) -> dict[str, Any]:
    job = jobstore.get(ctx().state, request_namespace(), job_id)
    if job is None:
        raise HTTPError(404, "job not found")
    return job


def _prepare(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("Job") is None:
        raise HTTPError(400, "Job must be specified")
    try:
        job = spec.prepare(body["Job"])
    except spec.SpecInputError as e:
        raise HTTPError(400, str(e)) from None
    except spec.SpecInvalid as e:
        raise HTTPError(500, str(e)) from None
    unavailable = admission.refusals(job)  # what Nomad's admission validators refuse on this agent
    if unavailable:
        raise HTTPError(500, str(spec.SpecInvalid(unavailable)))
    # a template the agent would render wrong, a constraint it cannot evaluate: never stored
    refused = task_templates.refusal(job) or task_artifacts.refusal(job) or feasibility.unevaluated_constraint(job) \
        or host_volumes.refusals(job)
    if refused:
        raise HTTPError(400, refused)
    return job


def _of_job(docs: list[dict[str, Any]], job_id: str) -> list[dict[str, Any]]:
    """The allocations, evaluations or deployments of job `job_id` in the request's namespace."""
    return [d for d in in_namespace(docs, wildcard=False) if d["JobID"] == job_id]


def _allocs_of(job_id: str) -> list[dict[str, Any]]:
    return _of_job(ctx().state.values("alloc"), job_id)


def _listed_jobs(prefix: str) -> list[dict[str, Any]]:
    """The jobs whose ID starts with `prefix`, in the request's namespace or (`*`) in every one."""
    state, ns = ctx().state, request_namespace()
    if ns == "*":
        return [j for j in state.values("job") if j["ID"].startswith(prefix)]
    return state.values("job", job_key(ns, prefix))


@bp.get("/v1/jobs")
async def list_jobs() -> Response:
    prefix = request.args.get("prefix", "")
    state = ctx().state

    def produce() -> list[dict[str, Any]]:
        allocs: dict[str, list[dict[str, Any]]] = {}
        for a in state.values("alloc"):
            allocs.setdefault(owner_key(a), []).append(a)
        return [jobstore.job_stub(j, jobstore.job_summary(j, allocs.get(key_of_job(j), []),
                                                          jobstore.children_of(state, namespace_of(j), j["ID"])))
                for j in _listed_jobs(prefix)]

    return await read_endpoint(state, ("job", "alloc"), produce)


def _register(body: dict[str, Any], path_id: str | None) -> Response:
    check_fields(body, REGISTER_FIELDS, "job register request")
    job = _prepare(body)
    # Nomad's namespaceForJob: ?namespace= (the CLI's -namespace), then the request's, then the job's
    job["Namespace"] = request.args.get("namespace") or body.get("Namespace") or job.get("Namespace") or "default"
    if path_id is not None and job["ID"] != path_id:
        raise HTTPError(400, "Job ID does not match name")
    enforce = body.get("EnforceIndex", False)
    index = body.get("JobModifyIndex", 0)
    if not isinstance(enforce, bool) or not isinstance(index, int) or isinstance(index, bool):
        raise HTTPError(400, "Request decode failed: EnforceIndex must be a bool and JobModifyIndex an integer")
    submission = _submission(body)
    try:
        out = jobstore.register(ctx().state, job, enforce, index, submission)
    except jobstore.RegisterRefused as e:  # EnforceIndex, or a gateway entry Consul refuses
        raise HTTPError(500, str(e)) from None
    notify()
    return reply(out, out["Index"])


@bp.route("/v1/jobs", methods=["POST", "PUT"])
def register_job() -> Response:
    return _register(json_body(), None)


@bp.route("/v1/jobs/parse", methods=["POST", "PUT"])
def parse_job() -> Response:
    body = json_body()
    check_fields(body, PARSE_FIELDS, "job parse request")
    hcl = body.get("JobHCL")
    if not isinstance(hcl, str) or not hcl.strip():
        raise HTTPError(400, "Job spec is empty")
    variables = body.get("Variables") or {}  # an object, or the text of a .vars file as Nomad takes it
    if not isinstance(variables, (dict, str)):
        raise HTTPError(400, "Variables must be an object or HCL variable-file text")
    try:
        job = spec.parse_hcl(hcl, variables)
        if body.get("Canonicalize"):
            job = spec.canonicalize(job)
    except spec.SpecInputError as e:
        raise HTTPError(400, str(e)) from None
    except RecursionError:  # the HCL parser recurses per nesting level
        raise HTTPError(400, "Error parsing job file: nested too deeply") from None
    return reply(job)


@bp.get("/v1/job/<path:job_id>")
async def get_job(job_id: str) -> Response:
    state = ctx().state
    index = await blocking(state, ("job",))
    return reply(strip_private(_job_or_404(job_id)), index)


@bp.route("/v1/job/<path:job_id>", methods=["POST", "PUT"])
def update_job(job_id: str) -> Response:
    return _register(json_body(), job_id)


@bp.delete("/v1/job/<path:job_id>")
def deregister_job(job_id: str) -> Response:
    purge = parse_bool("purge")
    try:
        out = jobstore.deregister(ctx().state, request_namespace(), job_id, purge)
    except jobstore.JobNotFound:
        raise HTTPError(404, "job not found") from None
    notify()
    return reply(out, out["Index"])


@bp.route("/v1/job/<path:job_id>/plan", methods=["POST", "PUT"])
def plan_job(job_id: str) -> Response:
    body = json_body()
    check_fields(body, PLAN_FIELDS, "job plan request")
    job = _prepare(body)
    if job["ID"] != job_id:
        raise HTTPError(400, "Job ID does not match")
    job["Namespace"] = request.args.get("namespace") or body.get("Namespace") or job.get("Namespace") or "default"
    state = ctx().state
    existing = jobstore.get(state, job["Namespace"], job_id)
    # The plan shows the version registration would create: unchanged spec keeps the version.
    job["Version"] = existing["Version"] if existing and not jobstore.spec_changed(existing, job) else (
        existing["Version"] + 1 if existing else 0)
    all_allocs = state.values("alloc")
    node_rec = state.get("node", ctx().node_id)
    if node_rec is None:
        raise HTTPError(500, "no node registered yet")
    deps = [d for d in state.values("deployment") if existing and owner_key(d) == key_of_job(job)]
    current = canaries.current_deployment(dict(job, CreateIndex=existing["CreateIndex"]) if existing else None, deps)
    mine = [a for a in all_allocs if existing and owner_key(a) == key_of_job(job)]
    plan = planner.plan_job(job, mine, all_allocs, node_rec.value, spec.update_kind, current=current,
                            stale_canaries=canaries.stale(deps, current))
    diff = spec.diff(existing, job) if body.get("Diff") else None
    return reply({
        "Index": state.index, "JobModifyIndex": existing["JobModifyIndex"] if existing else 0,
        "CreatedEvals": None, "Diff": diff, "Annotations": plan.annotations(),
        "FailedTGAllocs": plan.failed or None, "Warnings": "", "NextPeriodicLaunch": "0001-01-01T00:00:00Z",
    }, state.index)


def _version_field(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise HTTPError(400, f"Request decode failed: {name} must be an unsigned integer")
    return value


@bp.route("/v1/job/<path:job_id>/revert", methods=["POST", "PUT"])
def revert_job(job_id: str) -> Response:
    body = json_body()
    check_fields(body, REVERT_FIELDS, "job revert request")
    if not body.get("JobID"):
        raise HTTPError(400, "JobID must be specified")
    if body["JobID"] != job_id:
        raise HTTPError(400, "Job ID does not match")
    version = _version_field(body, "JobVersion") or 0  # Go's zero value when absent
    namespace = request.args.get("namespace") or body.get("Namespace") or "default"
    try:
        out = jobstore.revert(ctx().state, job_id, version, enforce_prior_version=_version_field(
            body, "EnforcePriorVersion"), namespace=namespace)
    except jobstore.RevertRefused as e:
        raise HTTPError(500, str(e)) from None
    notify()
    return reply(out, out["Index"])


@bp.get("/v1/job/<path:job_id>/versions")
async def job_versions(job_id: str) -> Response:
    state = ctx().state
    index = await blocking(state, ("job", "job_version"))
    ns = request_namespace()
    versions = [strip_private(r.value) for r in reversed(jobstore.versions(state, ns, job_id))]
    if not versions:
        raise HTTPError(404, "job versions not found")
    diffs = None
    if parse_bool("diffs"):
        diffs = [spec.diff(versions[i + 1], versions[i]) for i in range(len(versions) - 1)]
    return reply({"Versions": versions, "Diffs": diffs, "Index": index}, index)


@bp.get("/v1/job/<path:job_id>/submission")
async def job_submission(job_id: str) -> Response:
    # Nomad requires ?version= (api.Jobs.Submission always sends it) and says why when it is missing.
    raw = request.args.get("version", "")
    if not raw.isascii() or not raw.isdigit():
        raise HTTPError(400, "Unable to parse job submission version parameter")
    state = ctx().state
    index = await blocking(state, ("job", jobstore.SUBMISSION_KIND))
    found = jobstore.submission(state, request_namespace(), job_id, int(raw))
    if found is None:
        raise HTTPError(404, "job source not found")
    return reply(found, index)


@bp.get("/v1/job/<path:job_id>/allocations")
async def job_allocations(job_id: str) -> Response:
    state = ctx().state
    show_all = parse_bool("all")

    def produce() -> list[dict[str, Any]]:
        job = jobstore.get(state, request_namespace(), job_id)
        allocs = _allocs_of(job_id)
        if not show_all and job is not None:
            # Without ?all Nomad lists allocations of the current job incarnation only.
            allocs = [a for a in allocs if a["CreateIndex"] >= job["CreateIndex"]]
        return [alloc_stub(a) for a in sorted(allocs, key=lambda a: a["CreateIndex"])]

    return await read_endpoint(state, ("alloc",), produce)


@bp.get("/v1/job/<path:job_id>/evaluations")
async def job_evaluations(job_id: str) -> Response:
    state = ctx().state
    return await read_endpoint(state, ("eval",), lambda: sorted(
        _of_job(state.values("eval"), job_id),
        key=lambda e: -e["CreateIndex"]))


@bp.get("/v1/job/<path:job_id>/deployments")
async def job_deployments(job_id: str) -> Response:
    state = ctx().state
    return await read_endpoint(state, ("deployment",), lambda: [deployment_json(d) for d in sorted(
        _of_job(state.values("deployment"), job_id), key=lambda d: -d["CreateIndex"])])


@bp.get("/v1/job/<path:job_id>/deployment")
async def job_latest_deployment(job_id: str) -> Response:
    state = ctx().state

    def produce() -> dict[str, Any] | None:
        deps = sorted(_of_job(state.values("deployment"), job_id),
                      key=lambda d: -d["CreateIndex"])
        return deployment_json(deps[0]) if deps else None

    return await read_endpoint(state, ("deployment",), produce)


@bp.get("/v1/job/<path:job_id>/summary")
async def job_summary(job_id: str) -> Response:
    state = ctx().state
    index = await blocking(state, ("job", "alloc"))
    children = jobstore.children_of(state, request_namespace(), job_id)
    return reply(jobstore.job_summary(_job_or_404(job_id), _allocs_of(job_id), children), index)
