"""Service definitions → validated, frozen model. See `load_spec`."""
from nomadmesh.errors import Problem, SpecError
from nomadmesh.spec.load import find_service_files, load_spec
from nomadmesh.spec.model import Spec

__all__ = ["Problem", "Spec", "SpecError", "find_service_files", "load_spec"]
