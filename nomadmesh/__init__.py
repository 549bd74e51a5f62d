"""nomadmesh: describe services once, get a Consul Connect service mesh on Nomad.

The library's public names are re-exported here; everything else is internal and may change.
What the CLI does is callable from here: `load`, `render`, `plan`, `apply`, `status`, `destroy`
(see nomadmesh.library).
The data flow shows in the packages: definitions (load + validate) → render (jobs) → deploy (talk to
Nomad/Consul, one client per API: NomadAPI, ConsulAPI); mesh holds the pure intention and graph
logic; agent is the embedded dev agent, which nothing here imports.
"""
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
from nomadmesh.render import render, write_jobs

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
