"""The exception hierarchy every nomadmesh module raises.

    NomadMeshError                 base; the CLI turns it into a one-line message, never a traceback
    ├── SpecError                  service definitions are invalid (exit 2); carries every Problem
    ├── RenderError                a template failed (exit 2)
    ├── TargetError                a Nomad/Consul target is unreachable or refused a request (exit 1)
    └── AgentError                 the embedded agent cannot start or do what was asked (exit 1)

The CLI maps them to exit codes in one place (nomadmesh/cli/main.py).
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
