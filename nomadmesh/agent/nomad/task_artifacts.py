"""`artifact` blocks: refused at registration when the dev agent cannot fetch them (Nomad's
validation-error shape), fetched into the task's dir before it starts otherwise (runtime.artifacts)."""
from __future__ import annotations

from typing import Any

from nomadmesh.agent.nomad.platform import artifact_unsupported


def refusal(job: dict[str, Any]) -> str | None:
    """Why the dev agent refuses `job`'s artifacts, or None."""
    for group in job.get("TaskGroups") or []:
        for task in group.get("Tasks") or []:
            for i, artifact in enumerate(task.get("Artifacts") or [], 1):
                why = artifact_unsupported(artifact.get("GetterSource") or "", artifact.get("GetterOptions"))
                if why:
                    return (f"Task group {group['Name']} validation failed: Task {task['Name']} validation failed: "
                            f"Artifact {i} validation failed: {why}")
    return None
