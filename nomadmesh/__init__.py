"""nomadmesh: describe services once, get a Consul Connect service mesh on Nomad.

The library's public names are re-exported here; everything else is internal and may change.
What the CLI does is callable from here: `load`, `render`, `plan`, `apply`, `status`, `destroy`
(see nomadmesh.library).
The data flow shows in the packages: definitions (load + validate) → render (jobs) → deploy (talk to
Nomad/Consul, one client per API: NomadAPI, ConsulAPI); mesh holds the pure intention and graph
logic; agent is the embedded dev agent, which nothing here imports.

Names are imported on first use (PEP 562), so `import nomadmesh` and every CLI command pay only for
what they touch: `nomadmesh render` never loads the HTTP clients of deploy (requests, python-consul).
`render` is the exception: it is also the name of a subpackage, and importing that subpackage
would set this module's `render` to it, so the function is bound here before anything can.
"""
import importlib as _importlib
import typing as _typing

from nomadmesh.render import render, write_jobs

if _typing.TYPE_CHECKING:
    from nomadmesh.definitions import Spec, load_spec
    from nomadmesh.deploy.apply import DeployReport
    from nomadmesh.deploy.consul_api import ConsulAPI
    from nomadmesh.deploy.errors import DeployError
    from nomadmesh.deploy.nomad_api import NomadAPI
    from nomadmesh.deploy.plan import Plan
    from nomadmesh.deploy.status import JobStatus
    from nomadmesh.deploy.target import Target, consul_client, nomad_client, target_from_env
    from nomadmesh.errors import AgentError, NomadMeshError, Problem, RenderError, SpecError, TargetError
    from nomadmesh.library import apply, destroy, load, plan, status
    from nomadmesh.mesh.graph import build_graph
    from nomadmesh.mesh.intentions import Intention, evaluate

# Each lazily exported name and the module it comes from.
_LAZY = {
    "AgentError": "nomadmesh.errors",
    "ConsulAPI": "nomadmesh.deploy.consul_api",
    "DeployError": "nomadmesh.deploy.errors",
    "DeployReport": "nomadmesh.deploy.apply",
    "Intention": "nomadmesh.mesh.intentions",
    "JobStatus": "nomadmesh.deploy.status",
    "NomadAPI": "nomadmesh.deploy.nomad_api",
    "NomadMeshError": "nomadmesh.errors",
    "Plan": "nomadmesh.deploy.plan",
    "Problem": "nomadmesh.errors",
    "RenderError": "nomadmesh.errors",
    "Spec": "nomadmesh.definitions",
    "SpecError": "nomadmesh.errors",
    "Target": "nomadmesh.deploy.target",
    "TargetError": "nomadmesh.errors",
    "apply": "nomadmesh.library",
    "build_graph": "nomadmesh.mesh.graph",
    "consul_client": "nomadmesh.deploy.target",
    "destroy": "nomadmesh.library",
    "evaluate": "nomadmesh.mesh.intentions",
    "load": "nomadmesh.library",
    "load_spec": "nomadmesh.definitions",
    "nomad_client": "nomadmesh.deploy.target",
    "plan": "nomadmesh.library",
    "status": "nomadmesh.library",
    "target_from_env": "nomadmesh.deploy.target",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nomadmesh' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AgentError",
    "ConsulAPI",
    "DeployError",
    "DeployReport",
    "Intention",
    "JobStatus",
    "NomadAPI",
    "NomadMeshError",
    "Plan",
    "Problem",
    "RenderError",
    "Spec",
    "SpecError",
    "Target",
    "TargetError",
    "apply",
    "build_graph",
    "consul_client",
    "destroy",
    "evaluate",
    "load",
    "load_spec",
    "nomad_client",
    "plan",
    "render",
    "status",
    "target_from_env",
    "write_jobs",
]
