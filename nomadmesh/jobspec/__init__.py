"""Nomad jobspecs: HCL → Job JSON, defaults, validation, plan diffs. Pure, shared by the dev agent
(/v1/jobs/parse, registration) and product code; it never imports nomadmesh.agent.

    parse_hcl(text, variables=None) -> dict     HCL2 jobspec → Job dict (Go field names, ns durations)
    from_json(job) -> dict                      a submitted Job dict checked against the same schema
    canonicalize(job) -> dict                   Nomad's defaults filled in (idempotent, returns a copy)
    validate(job) -> list[str]                  Nomad-like validation errors ([] when valid)
    diff(old, new) -> dict                      Nomad's plan Diff (JobDiff shape)
    update_kind(old_group, new_group) -> str    "none" | "in-place" | "destructive" for one task group

Every problem is a JobspecError (a NomadMeshError) whose message names the block/field and, for
HCL, the line and column: the HTTP layer returns it as a 400.
"""
from __future__ import annotations

from nomadmesh.jobspec.canonical import canonicalize
from nomadmesh.jobspec.diff import diff, update_kind
from nomadmesh.jobspec.errors import JobspecError
from nomadmesh.jobspec.json_input import from_json
from nomadmesh.jobspec.parse import parse_hcl
from nomadmesh.jobspec.validate import validate

__all__ = ["JobspecError", "canonicalize", "diff", "from_json", "parse_hcl", "update_kind", "validate"]
