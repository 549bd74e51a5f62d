"""The one Nomad client of product code (deploy, plan, status, logs, up/down, the web UI's reads).

A thin layer over python-nomad plus `HttpApi`'s raw reads. Every call goes through `NomadAPI`,
which turns python-nomad's and requests' exceptions into a `TargetError` worded by
`deploy.http_api` (the same wording as the Consul client's), naming the address and carrying
Nomad's own message:

    cannot reach Nomad at http://127.0.0.1:4646: connection refused
    Nomad at http://127.0.0.1:4646 refused the token (403): ACL token not found

Reads that may wait use Nomad's blocking queries (`?index=&wait=`). python-nomad has no
parameter for them, but its `Requester.request` passes query params through and returns the
`requests.Response`, whose `X-Nomad-Index` header is the next index to wait on.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import nomad
import nomad.api.exceptions as nx
import requests
from nomad.api.base import Requester

from nomadmesh.deploy.http_api import HttpApi, response_message
from nomadmesh.deploy.target import Target, nomad_client
from nomadmesh.errors import TargetError

T = TypeVar("T")
Job = dict[str, Any]


class EnforceIndexConflict(TargetError):
    """The job changed between plan and register (Nomad refused the JobModifyIndex)."""


@dataclass(frozen=True)
class Blocking:
    """A blocking read's answer and the index to pass to the next read."""

    value: Any
    index: int


class NomadAPI(HttpApi):
    """What product code needs from Nomad; every method raises TargetError, never a python-nomad error."""

    def __init__(self, target: Target, timeout: int = 10) -> None:
        params = {k: v for k, v in (("namespace", target.namespace), ("region", target.region)) if v}
        super().__init__("Nomad", target.nomad, "X-Nomad-Token", "X-Nomad-Index", params)
        self.target = target
        self.client: nomad.Nomad = nomad_client(target, timeout=timeout)

    # -- error translation -------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except nx.BaseNomadException as e:
            raise self._translate(what, e) from None
        except requests.RequestException as e:
            raise self.unreachable(e) from None

    def _translate(self, what: str, e: nx.BaseNomadException) -> TargetError:
        resp = e.nomad_resp
        if not isinstance(resp, requests.Response):
            return self.unreachable(resp)
        msg = response_message(resp)
        if "enforcing job modify index" in msg.lower():
            return EnforceIndexConflict(f"{what}: the job changed since it was planned ({msg}); run plan again")
        return self.refused(resp.status_code, msg, what)

    def _blocking(self, requester: Requester, *segments: str, index: int, wait_s: float) -> Blocking:
        """GET /v1/<requester>/<segments> through python-nomad (token, namespace, region, TLS included),
        as a blocking query when `index` > 0."""
        params: dict[str, Any] = {}
        if index > 0:
            params = {"index": index, "wait": f"{max(1, int(wait_s * 1000))}ms"}
        path = "/".join((requester.ENDPOINT, *segments))
        resp = self._call(f"GET /v1/{path}", lambda: requester.request(
            *segments, method="get", params=params, timeout=wait_s + wait_s / 16 + 10))
        return Blocking(resp.json(), int(resp.headers.get("X-Nomad-Index", "0") or 0))

    # -- reads ---------------------------------------------------------------------------------
    def ping(self) -> str:
        """The leader's address; TargetError when nobody answers."""
        return str(self._call("GET /v1/status/leader", lambda: self.client.status.leader.get_leader()))

    def jobs(self) -> list[dict[str, Any]]:
        """Job stubs with their Meta (Nomad 1.6+ lists it only when asked: `?meta=true`): ownership is there."""
        return list(self._call("GET /v1/jobs", lambda: self.client.jobs.get_jobs(meta=True)))

    def job(self, job_id: str) -> Job | None:
        """The live job, or None when Nomad has none of that name."""
        try:
            return self.client.job.get_job(job_id)
        except nx.URLNotFoundNomadException:
            return None
        except nx.BaseNomadException as e:
            raise self._translate(f"GET /v1/job/{job_id}", e) from None
        except requests.RequestException as e:
            raise self.unreachable(e) from None

    def allocations(self, job_id: str, index: int = 0, wait_s: float = 5.0) -> Blocking:
        return self._blocking(self.client.job, job_id, "allocations", index=index, wait_s=wait_s)

    def allocation(self, alloc_id: str) -> dict[str, Any]:
        return self._call(f"GET /v1/allocation/{alloc_id}",
                          lambda: self.client.allocation.get_allocation(alloc_id))

    def evaluations(self, job_id: str) -> list[dict[str, Any]]:
        return self._call(f"GET /v1/job/{job_id}/evaluations",
                          lambda: self.client.job.get_evaluations(job_id))

    def evaluation(self, eval_id: str, index: int = 0, wait_s: float = 5.0) -> Blocking:
        return self._blocking(self.client.evaluation, eval_id, index=index, wait_s=wait_s)

    def latest_deployment(self, job_id: str, index: int = 0, wait_s: float = 5.0) -> Blocking:
        return self._blocking(self.client.job, job_id, "deployment", index=index, wait_s=wait_s)

    def deployment(self, dep_id: str, index: int = 0, wait_s: float = 5.0) -> Blocking:
        return self._blocking(self.client.deployment, dep_id, index=index, wait_s=wait_s)

    def logs(self, alloc_id: str, task: str, stream: str = "stderr", tail_bytes: int | None = None) -> str:
        """A task's stdout or stderr as text; with `tail_bytes`, only the end of it."""
        origin, offset = ("end", tail_bytes) if tail_bytes else ("start", 0)
        return self._call(f"GET /v1/client/fs/logs/{alloc_id}", lambda: self.client.client.stream_logs.stream(
            alloc_id, task, stream, follow=False, offset=offset, origin=origin, plain=True))

    def follow_logs(self, alloc_id: str, task: str, stream: str = "stderr", tail_bytes: int = 4096) -> Iterator[str]:
        """An iterator of text chunks, following the log until the caller stops (Ctrl-C)."""
        resp = self._call(f"GET /v1/client/fs/logs/{alloc_id}", lambda: self.client.client.stream_logs.request(
            alloc_id, method="get", stream=True, timeout=None,
            params={"task": task, "type": stream, "follow": True, "origin": "end", "offset": tail_bytes,
                    "plain": True}))
        return resp.iter_content(chunk_size=None, decode_unicode=True)

    # -- writes --------------------------------------------------------------------------------
    def plan(self, job: Job) -> dict[str, Any]:
        """Nomad's dry run with the diff against the live job."""
        return self._call(f"POST /v1/job/{job['ID']}/plan",
                          lambda: self.client.job.plan_job(job["ID"], {"Job": job}, diff=True))

    def register(self, job: Job, modify_index: int, submission: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Register with EnforceIndex: `modify_index` 0 means the job must not exist yet. `submission`
        (Nomad 1.6+ JobSubmission: Source, Format, VariableFlags, Variables) is kept by Nomad as the
        source of the new version, as `nomad job run` sends it."""
        body: dict[str, Any] = {"Job": job, "EnforceIndex": True, "JobModifyIndex": modify_index}
        if submission is not None:
            body["Submission"] = dict(submission)
        return self._call(f"POST /v1/job/{job['ID']}",
                          lambda: self.client.job.register_job(job["ID"], body))

    def revert(self, job_id: str, version: int, enforce_prior_version: int | None = None) -> dict[str, Any]:
        """Nomad's job revert: a copy of `version` becomes the newest version; refused unless the job
        is still at `enforce_prior_version` when given."""
        return self._call(f"POST /v1/job/{job_id}/revert", lambda: self.client.job.revert_job(
            job_id, version, enforce_prior_version=enforce_prior_version))

    def promote(self, dep_id: str) -> dict[str, Any]:
        """Promote every canary of a deployment (Nomad's /v1/deployment/promote/:id, All: true)."""
        return self._call(f"POST /v1/deployment/promote/{dep_id}",
                          lambda: self.client.deployment.promote_deployment_all(dep_id))

    def fail_deployment(self, dep_id: str) -> dict[str, Any]:
        """Mark a running deployment failed: Nomad stops its canaries and, with auto_revert, rolls back."""
        return self._call(f"POST /v1/deployment/fail/{dep_id}",
                          lambda: self.client.deployment.fail_deployment(dep_id))

    def versions(self, job_id: str) -> list[Job]:
        """Every version Nomad still keeps of the job, newest first."""
        return list(self._call(f"GET /v1/job/{job_id}/versions",
                               lambda: self.client.job.get_versions(job_id))["Versions"])

    def deregister(self, job_id: str, purge: bool = False) -> dict[str, Any]:
        return self._call(f"DELETE /v1/job/{job_id}",
                          lambda: self.client.job.deregister_job(job_id, purge=purge or None))

    def parse(self, hcl: str, variables: str = "") -> Job:
        """The target's own reading of an HCL2 jobspec, canonicalized, as `nomad job run` gets it.
        `variables` is var-file text (`name = "value"` lines): /v1/jobs/parse's `Variables`."""
        body = {"JobHCL": hcl, "Canonicalize": True, "Variables": variables}
        return self._call("POST /v1/jobs/parse", lambda: self.client.jobs.request(
            "parse", json=body, method="post", allow_redirects=True).json())

    def submission(self, job_id: str, version: int) -> dict[str, Any] | None:
        """The source `job_id` was registered with at `version`, or None when Nomad kept none."""
        try:
            return self.client.job.request(job_id, "submission", method="get", params={"version": version}).json()
        except nx.URLNotFoundNomadException:
            return None
        except nx.BaseNomadException as e:
            raise self._translate(f"GET /v1/job/{job_id}/submission", e) from None
        except requests.RequestException as e:
            raise self.unreachable(e) from None

