"""The one seam to nomadmesh.jobspec (parse, normalize, canonicalize, validate, diff, update_kind).

Everything in nomad/ and the Nomad API goes through here, so the jobspec package's error type
(JobspecError) becomes one local exception and its names are bound in one place.
"""
from __future__ import annotations

from typing import Any

import nomadmesh.jobspec as js


class SpecInputError(Exception):
    """The job (HCL or JSON) is malformed: a 400 with this one-line reason."""


class SpecInvalid(Exception):
    """The job is well-formed but invalid (Nomad answers 500 with a multierror text)."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        n = len(errors)
        body = "\n".join(f"\t* {e}" for e in errors)
        super().__init__(f"{n} error{'s' if n != 1 else ''} occurred:\n{body}\n")


def parse_hcl(text: str, variables: dict[str, Any] | str | None = None) -> dict[str, Any]:
    try:
        return js.parse_hcl(text, variables or None)
    except js.JobspecError as e:
        raise SpecInputError(str(e)) from None


def from_json(job: Any) -> dict[str, Any]:
    if not isinstance(job, dict):
        raise SpecInputError("Job: expected an object")
    try:
        return js.from_json(job)
    except js.JobspecError as e:
        raise SpecInputError(str(e)) from None


def canonicalize(job: dict[str, Any]) -> dict[str, Any]:
    try:
        return js.canonicalize(job)
    except js.JobspecError as e:
        raise SpecInputError(str(e)) from None


def validate(job: dict[str, Any], own_labels: frozenset[str] = frozenset()) -> None:
    """SpecInvalid unless `job` is valid. `own_labels` are port labels the agent itself added
    (`connect-proxy-<svc>`): the jobspec validator applies the HCL parser's `^[a-zA-Z0-9_]+$` label
    rule, which Nomad's server does not apply to the labels its Connect hook injects."""
    exempt = {f'Port label "{label}" must only contain letters, numbers and underscores' for label in own_labels}
    errors = [e for e in js.validate(job) if str(e).split(": ")[-1] not in exempt]
    if errors:
        raise SpecInvalid([str(e) for e in errors])


def prepare(job: Any) -> dict[str, Any]:
    """A submitted Job JSON -> the canonical job to store, or SpecInputError / SpecInvalid.

    Like Nomad's job endpoint: canonicalize, run the mutators (the Connect hook adds each sidecar's
    task and ports, so the stored job shows them), canonicalize what they added, then validate.
    """
    from nomadmesh.agent.nomad import connect_hook  # imports Envoy helpers: keep it off import time

    job = canonicalize(connect_hook.inject(canonicalize(from_json(job))))
    validate(job, connect_hook.injected_port_labels(job))
    return job


def diff(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    return js.diff(old, new)


def update_kind(old_group: dict[str, Any], new_group: dict[str, Any]) -> str:
    return js.update_kind(old_group, new_group)
