"""Errors of the deploy workflow (all NomadMeshError: one line for the user, no traceback)."""
from __future__ import annotations

from nomadmesh.errors import NomadMeshError


class DeployError(NomadMeshError):
    """A deploy, destroy or up could not do what was asked (a conflict, a failed deployment)."""

    exit_code = 1
