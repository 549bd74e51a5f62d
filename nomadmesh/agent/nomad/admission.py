"""Nomad's admission validators that refuse a job this agent has nothing to serve it with.

Vault: the dev agent has no Vault integration, so any `vault` block is refused as Nomad refuses it
when the named Vault cluster is not enabled (`Vault "default" not enabled but used in the job`),
rather than starting the task without the token it expects.
"""
from __future__ import annotations

import json
from typing import Any


def refusals(job: dict[str, Any]) -> list[str]:
    """The admission errors for `job` (empty when it may be registered)."""
    for group in job.get("TaskGroups") or []:
        for task in group.get("Tasks") or []:
            vault = task.get("Vault")
            if vault is not None:
                return [f"Vault {json.dumps(vault.get('Cluster') or 'default')} not enabled but used in the job"]
    return []
