"""nomadmesh: describe services once, get a Consul Connect service mesh on Nomad.

The library's public names are re-exported here; everything else is internal and may change.
The data flow shows in the packages: definitions (load + validate) → render (jobs) → deploy (talk to
Nomad/Consul, one client per API: NomadAPI, ConsulAPI); mesh holds the pure intention and graph
logic; agent is the embedded dev agent, which nothing here imports.
"""
from nomadmesh.definitions import Spec, load_spec
from nomadmesh.deploy.consul_api import ConsulAPI
from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.deploy.target import Target, consul_client, nomad_client, target_from_env
from nomadmesh.errors import AgentError, NomadMeshError, Problem, RenderError, SpecError, TargetError
from nomadmesh.mesh.graph import build_graph
from nomadmesh.mesh.intentions import Intention, evaluate
from nomadmesh.render import render, write_jobs

__all__ = [
    "AgentError",
    "ConsulAPI",
    "Intention",
    "NomadAPI",
    "NomadMeshError",
    "Problem",
    "RenderError",
    "Spec",
    "SpecError",
    "Target",
    "TargetError",
    "build_graph",
    "consul_client",
    "evaluate",
    "load_spec",
    "nomad_client",
    "render",
    "target_from_env",
    "write_jobs",
]
