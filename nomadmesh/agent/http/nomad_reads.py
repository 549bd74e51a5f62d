"""Read endpoints: allocations, evaluations, deployments, nodes, agent and status."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import Blueprint, Response, request

from nomadmesh.agent.http.nomad_ctx import ctx
from nomadmesh.agent.http.nomad_util import (
    HTTPError,
    blocking,
    in_namespace,
    parse_bool,
    read_endpoint,
    reply,
    strip_private,
)
from nomadmesh.agent.nomad.node import NOMAD_VERSION, node_stub
from nomadmesh.agent.nomad.structs import alloc_stub, deployment_json

bp = Blueprint("nomad_reads", __name__)
RPC_PORT = 4647  # the RPC port a Nomad server advertises (the dev agent speaks no RPC; clients only show it)


async def _one(kind: str, key: str, what: str,
               view: Callable[[dict[str, Any]], dict[str, Any]] = lambda d: d) -> Response:
    """GET of one document, by full ID or by a unique ID prefix as Nomad allows."""
    state = ctx().state
    index = await blocking(state, (kind,))
    rec = state.get(kind, key)
    if rec is None and len(key) >= 8:
        matches = state.records(kind, key)
        rec = matches[0] if len(matches) == 1 else None
    if rec is None:
        raise HTTPError(404, f"{what} not found")
    return reply(view(strip_private(rec.value)), index)


def _prefixed(kind: str) -> list[dict[str, Any]]:
    return ctx().state.values(kind, request.args.get("prefix", ""))


def _listed(kind: str) -> list[dict[str, Any]]:
    """A list endpoint's documents: by `?prefix=`, in the request's namespace (`*`: all)."""
    return in_namespace(_prefixed(kind))


@bp.get("/v1/allocations")
async def allocations() -> Response:
    return await read_endpoint(ctx().state, ("alloc",), lambda: [alloc_stub(a) for a in _listed("alloc")])


@bp.get("/v1/allocation/<alloc_id>")
async def allocation(alloc_id: str) -> Response:
    return await _one("alloc", alloc_id, "alloc")


@bp.get("/v1/evaluations")
async def evaluations() -> Response:
    return await read_endpoint(ctx().state, ("eval",), lambda: _listed("eval"))


@bp.get("/v1/evaluation/<eval_id>")
async def evaluation(eval_id: str) -> Response:
    return await _one("eval", eval_id, "eval")


@bp.get("/v1/evaluation/<eval_id>/allocations")
async def evaluation_allocations(eval_id: str) -> Response:
    state = ctx().state
    return await read_endpoint(state, ("alloc",), lambda: [alloc_stub(a) for a in state.values("alloc")
                                                     if a["EvalID"] == eval_id])


@bp.get("/v1/deployments")
async def deployments() -> Response:
    return await read_endpoint(ctx().state, ("deployment",),
                               lambda: [deployment_json(d) for d in _listed("deployment")])


@bp.get("/v1/deployment/<dep_id>")
async def deployment(dep_id: str) -> Response:
    return await _one("deployment", dep_id, "deployment", deployment_json)


@bp.get("/v1/deployment/allocations/<dep_id>")
async def deployment_allocations(dep_id: str) -> Response:
    state = ctx().state
    return await read_endpoint(state, ("alloc",), lambda: [alloc_stub(a) for a in state.values("alloc")
                                                     if a.get("DeploymentID") == dep_id])


@bp.get("/v1/nodes")
async def nodes() -> Response:
    resources = parse_bool("resources")  # Nomad's NodeStubFields: the stubs also carry the node's resources

    def stub(n: dict[str, Any]) -> dict[str, Any]:
        extra = {"NodeResources": n["NodeResources"], "ReservedResources": n.get("ReservedResources")}
        return {**node_stub(n), **extra} if resources else node_stub(n)
    return await read_endpoint(ctx().state, ("node",), lambda: [stub(n) for n in _prefixed("node")])


@bp.get("/v1/node/<node_id>")
async def node(node_id: str) -> Response:
    return await _one("node", node_id, "node")


@bp.get("/v1/node/<node_id>/allocations")
async def node_allocations(node_id: str) -> Response:
    state = ctx().state
    return await read_endpoint(state, ("alloc",), lambda: [strip_private(a) for a in state.values("alloc")
                                                     if a["NodeID"] == node_id])


@bp.get("/v1/agent/self")
def agent_self() -> Response:
    c = ctx()
    cfg = c.config
    addr = f"{cfg.bind}:{cfg.nomad_port}"
    return reply({
        "config": {
            "Region": cfg.region, "Datacenter": cfg.datacenter, "NodeName": cfg.node_name,
            "DataDir": str(cfg.data_dir), "BindAddr": cfg.bind,
            "Version": {"Version": NOMAD_VERSION, "VersionPrerelease": "", "VersionMetadata": ""},
            "Ports": {"HTTP": cfg.nomad_port, "RPC": 4647, "Serf": 4648},
            "Client": {"Enabled": True, "NodeClass": "", "AllocDir": str(cfg.alloc_root),
                       "Options": {"driver.raw_exec.enable": "1"}},
            "Server": {"Enabled": True, "BootstrapExpect": 1},
            "Consul": {"Address": f"{cfg.bind}:{cfg.consul_port}",
                       "GRPCAddress": f"{cfg.bind}:{cfg.grpc_port}" if cfg.grpc_port is not None else ""},
            "DevMode": cfg.dev,
        },
        "member": {"Name": f"{cfg.node_name}.{cfg.region}", "Addr": cfg.bind, "Port": 4648, "Status": "alive",
                   "Tags": {"region": cfg.region, "dc": cfg.datacenter, "role": "nomad", "build": NOMAD_VERSION,
                            "id": c.node_id}},
        "stats": {"nomad": {"leader": "true", "server": "true", "known_regions": "1"},
                  "client": {"node_id": c.node_id, "known_servers": addr}},
    })


@bp.get("/v1/agent/health")
def agent_health() -> Response:
    return reply({"client": {"ok": True, "message": "ok"}, "server": {"ok": True, "message": "ok"}})


@bp.get("/v1/agent/members")
def agent_members() -> Response:
    """Status.Members: the one server, with the serf tags a Nomad server gossips."""
    c = ctx()
    cfg = c.config
    tags = {"role": "nomad", "region": cfg.region, "dc": cfg.datacenter, "build": NOMAD_VERSION, "revision": "",
            "vsn": "1", "raft_vsn": "3", "id": c.node_id, "rpc_addr": cfg.bind, "port": str(RPC_PORT),
            "bootstrap": "1", "expect": "1"}
    return reply({"ServerName": cfg.node_name, "ServerRegion": cfg.region, "ServerDC": cfg.datacenter,
                  "Members": [{"Name": f"{cfg.node_name}.{cfg.region}", "Addr": cfg.bind, "Port": 4648,
                               "Status": "alive", "Tags": tags, "ProtocolMin": 1, "ProtocolMax": 5,
                               "ProtocolCur": 2, "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4}]})


@bp.route("/v1/agent/servers", methods=["GET", "PUT", "POST"])
def agent_servers() -> Response:
    """The client's server list: the agent's embedded server, the only one its client can use."""
    own = f"{ctx().config.bind}:{RPC_PORT}"
    if request.method == "GET":
        return reply([own])
    addresses = request.args.getlist("address")
    if not addresses:
        raise HTTPError(400, "missing server address")
    foreign = [a for a in addresses if a not in (own, ctx().config.bind)]
    if foreign:  # refused rather than recorded and ignored: the dev client has no other server to use
        raise HTTPError(400, f"server {foreign[0]!r} refused: the dev agent's client uses its embedded server "
                             f"{own} only")
    return Response("", status=200)


@bp.route("/v1/agent/join", methods=["PUT", "POST"])
def agent_join() -> Response:
    """Nomad answers a join it could not make with 200, num_joined 0 and the error: the dev agent's
    server is a cluster of one and joins nobody."""
    addresses = request.args.getlist("address")
    if not addresses:
        raise HTTPError(400, "missing address to join")
    return reply({"num_joined": 0, "warning": "",
                  "error": f"the dev agent's server is a cluster of one: cannot join {', '.join(addresses)}"})


@bp.route("/v1/agent/force-leave", methods=["PUT", "POST"])
def agent_force_leave() -> Response:
    """No member can be failed in a cluster of one; as in serf, forcing out an unknown one is a no-op."""
    node = request.args.get("node", "")
    if not node:
        raise HTTPError(400, "missing node to force leave")
    cfg = ctx().config
    if node in (cfg.node_name, f"{cfg.node_name}.{cfg.region}"):
        raise HTTPError(500, "agent: cannot force leave the local agent, which is alive")
    return Response("", status=200)


@bp.get("/v1/status/leader")
async def status_leader() -> Response:
    return reply(f"{ctx().config.bind}:4647")


@bp.get("/v1/status/peers")
async def status_peers() -> Response:
    return reply([f"{ctx().config.bind}:4647"])


@bp.get("/v1/regions")
def regions() -> Response:
    return reply([ctx().config.region])
