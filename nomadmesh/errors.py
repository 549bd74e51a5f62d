"""The exception hierarchy every nomadmesh module raises.

    NomadMeshError                 base; the CLI turns it into a one-line message, never a traceback
    ├── SpecError                  service definitions are invalid (exit 2); carries every Problem
    ├── RenderError                a template failed, or a duration it writes is not one (exit 2)
    ├── JobspecError               jobspec/: an HCL2 jobspec or Job JSON Nomad would refuse (exit 2)
    ├── TargetError                a Nomad/Consul target is unreachable or refused a request (exit 1);
    │   │                          worded once for both APIs in deploy/http_api.py
    │   └── EnforceIndexConflict   deploy/nomad_api.py: the job changed between plan and register
    ├── DeployError                deploy/errors.py: deploy, destroy or up could not do what was asked
    ├── SidecarError               connect/sidecar_for.py: no such sidecar, or Consul's answer is unusable
    ├── UIError                    ui/app.py: the UI server cannot start (its port is taken)
    ├── CheckFailed                cli/intent.py: a checking command could not check (exit 2, as 1 means "no")
    └── AgentError                 the embedded agent cannot start or do what was asked (exit 1)
        ├── NetworkError           agent/runtime/cni.py: CNI/iptables setup failed
        └── InconsistentSnapshot   agent/connect/cache.py: a snapshot that would leave Envoy inconsistent

Pure helpers raise ValueErrors that their callers turn into the above with their own context:
DurationError (durations.py, Go's own text), ConversionError (jobspec/values.py), IntentionError,
InvalidIntentions, InvalidRouter (mesh/). The CLI maps NomadMeshErrors to exit codes in one place
(nomadmesh/cli/main.py).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (file and dotted field path) and what."""

    file: str
    field: str
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.message}"


class NomadMeshError(Exception):
    """Base of every error nomadmesh reports to a user."""

    exit_code = 1


class SpecError(NomadMeshError):
    """Invalid service definitions. Holds all problems found, not only the first."""

    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RenderError(NomadMeshError):
    exit_code = 2


class TargetError(NomadMeshError):
    exit_code = 1


class AgentError(NomadMeshError):
    exit_code = 1
