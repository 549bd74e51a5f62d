"""The one error the jobspec package raises.

The Nomad HTTP API turns it into a 400 with the message as the body, as Nomad does for a
jobspec it cannot parse or a Job it cannot accept.
"""
from __future__ import annotations

from nomadmesh.errors import NomadMeshError


class JobspecError(NomadMeshError):
    """An HCL jobspec or Job JSON that cannot be turned into a Job: says where and what."""

    exit_code = 2

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        self.line = line
        self.column = column
        where = ""
        if line is not None:
            where = f"line {line}, column {column}: " if column is not None else f"line {line}: "
        super().__init__(where + message)
