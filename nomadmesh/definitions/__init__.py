"""Service definitions → validated, frozen model. See `load_spec`."""
from nomadmesh.definitions.load import find_service_files, load_spec
from nomadmesh.definitions.model import Spec
from nomadmesh.errors import Problem, SpecError

__all__ = ["Problem", "Spec", "SpecError", "find_service_files", "load_spec"]
