"""Consul's operator endpoints beyond the raft configuration (consul_agent.py): autopilot
(configuration get/set with ?cas=, health, state), raft peer removal and leadership transfer, the
gossip keyring and usage figures.

The dev agent is a single server, always the leader and healthy, as `consul agent -dev` is: autopilot
reports it so; removing a peer or moving the leadership away fails as it does on a one-server
Consul (there is no other peer). The agent runs without gossip encryption, so every keyring
operation fails with the error serf gives then, for the WAN and the LAN pool (500). The autopilot
configuration is stored (kind `autopilot`) with Consul's defaults until written; a PUT replaces
the whole configuration, as Consul's does (absent fields become zero).
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, Response, request

from nomadmesh.agent.consul.catalog import CONSUL_VERSION
from nomadmesh.agent.duration_seconds import parse_duration
from nomadmesh.agent.http.common import HTTPError, current_ctx, json_body, json_response, text_response
from nomadmesh.agent.http.parts import consul_parts
from nomadmesh.agent.state import CasError

bp = Blueprint("consul_operator", __name__)

AUTOPILOT_KIND = "autopilot"
AUTOPILOT_KEY = "config"
# Consul's defaults (agent/config/default.go)
AUTOPILOT_DEFAULTS: dict[str, Any] = {
    "CleanupDeadServers": True, "LastContactThreshold": "200ms", "MaxTrailingLogs": 250, "MinQuorum": 0,
    "ServerStabilizationTime": "10s", "RedundancyZoneTag": "", "DisableUpgradeMigration": False,
    "UpgradeVersionTag": "",
}
_DURATIONS = ("LastContactThreshold", "ServerStabilizationTime")
_STARTED = datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _server() -> dict[str, Any]:
    ctx = current_ctx()
    address = ctx.config.bind if ctx.config.bind not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return {"ID": ctx.node_id, "Name": ctx.config.node_name, "Address": f"{address}:8300"}


def _go_duration(seconds: float) -> str:
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, secs = divmod(seconds, 60)
    text = f"{secs:g}s"
    return f"{int(minutes)}m{text}" if minutes else text


def _autopilot_config() -> dict[str, Any]:
    rec = current_ctx().state.get(AUTOPILOT_KIND, AUTOPILOT_KEY)
    if rec is None:
        return dict(AUTOPILOT_DEFAULTS, CreateIndex=0, ModifyIndex=0)
    return dict(rec.value, CreateIndex=rec.create_index, ModifyIndex=rec.modify_index)


@bp.get("/v1/operator/autopilot/configuration")
def autopilot_configuration() -> Response:
    return json_response(_autopilot_config())


@bp.put("/v1/operator/autopilot/configuration")
def set_autopilot_configuration() -> Response:
    body = json_body()
    if not isinstance(body, dict):
        raise HTTPError(400, "Error parsing autopilot config: body must be a JSON object")
    fields = {k.lower(): v for k, v in body.items()}
    config: dict[str, Any] = {}
    for name, default in AUTOPILOT_DEFAULTS.items():
        value = fields.get(name.lower())
        if name in _DURATIONS:
            try:
                seconds = parse_duration(value) if isinstance(value, str) else (value or 0) / 1e9
            except ValueError as e:
                raise HTTPError(400, f"Error parsing autopilot config: {e}") from None
            config[name] = _go_duration(seconds)
        elif isinstance(default, bool):
            config[name] = bool(value)
        elif isinstance(default, int):
            config[name] = int(value or 0)
        else:
            config[name] = str(value or "")
    cas: int | None = None
    if "cas" in request.args:
        try:
            cas = int(request.args["cas"])
        except ValueError:
            raise HTTPError(400, f"Error parsing cas value: {request.args['cas']!r} is not an integer") from None
    state = current_ctx().state
    try:
        with state.write() as txn:
            txn.put(AUTOPILOT_KIND, AUTOPILOT_KEY, config, cas=cas)
    except CasError:
        return json_response(False)
    return json_response(True)


def _health_server() -> dict[str, Any]:
    return dict(_server(), SerfStatus="alive", Version=CONSUL_VERSION, Leader=True, LastContact="0s",
                LastTerm=2, LastIndex=current_ctx().state.index, Healthy=True, Voter=True, StableSince=_STARTED)


@bp.get("/v1/operator/autopilot/health")
def autopilot_health() -> Response:
    return json_response({"Healthy": True, "FailureTolerance": 0, "Servers": [_health_server()]})


@bp.get("/v1/operator/autopilot/state")
def autopilot_state() -> Response:
    server = _server()
    entry = dict(server, NodeStatus="alive", Version=CONSUL_VERSION, LastContact="0s", LastTerm=2,
                 LastIndex=current_ctx().state.index, Healthy=True, StableSince=_STARTED, ReadReplica=False,
                 Status="leader", Meta={"consul-network-segment": ""}, NodeType="voter")
    return json_response({"Healthy": True, "FailureTolerance": 0, "OptimisticFailureTolerance": 0,
                          "Servers": {server["ID"]: entry}, "Leader": server["ID"], "Voters": [server["ID"]]})


@bp.delete("/v1/operator/raft/peer")
def remove_peer() -> Response:
    server = _server()
    peer_id, address = request.args.get("id", ""), request.args.get("address", "")
    if not peer_id and not address:
        raise HTTPError(400, "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove")
    if peer_id and peer_id != server["ID"]:
        raise HTTPError(500, f'id "{peer_id}" was not found in the Raft configuration')
    if not peer_id and address != server["Address"]:
        raise HTTPError(500, f'address "{address}" was not found in the Raft configuration')
    raise HTTPError(500, "the dev agent is the only server: removing it from the Raft configuration is refused")


@bp.post("/v1/operator/raft/transfer-leader")
def transfer_leader() -> Response:
    peer_id = request.args.get("id", "")
    if peer_id and peer_id != _server()["ID"]:
        raise HTTPError(500, f'id "{peer_id}" was not found in the Raft configuration')
    raise HTTPError(500, "cannot find peer")  # hashicorp/raft's answer when no other server can lead


def keyring_error(message: str) -> Response:
    """What Consul answers for a keyring operation when gossip encryption is off: each pool's
    failure and the node's message, as one multi-error (500)."""
    ctx = current_ctx()
    node, dc = ctx.config.node_name, ctx.config.datacenter
    errors = ["WAN error: 1/1 nodes reported failure", f"{node}.{dc}: {message}",
              f"{dc} (LAN) error: 1/1 nodes reported failure", f"{node}: {message}"]
    return text_response(500, f"{len(errors)} errors occurred:\n" + "".join(f"\t* {e}\n" for e in errors))


@bp.get("/v1/operator/keyring")
def keyring_list() -> Response:
    return keyring_error("Keyring is empty (encryption not enabled)")


@bp.route("/v1/operator/keyring", methods=["POST", "PUT", "DELETE"])
def keyring_change() -> Response:
    body = json_body()
    if not isinstance(body, dict) or not isinstance(body.get("Key", ""), str):
        raise HTTPError(400, "Request decode failed: the body must be {\"Key\": \"<base64 key>\"}")
    return keyring_error("No keyring to modify (encryption not enabled)")


@bp.get("/v1/operator/usage")
def usage() -> Response:
    parts = consul_parts()
    rows = parts.catalog.catalog_rows()
    kinds = {"api-gateway": 0, "connect-native": 0, "connect-proxy": 0, "ingress-gateway": 0, "mesh-gateway": 0,
             "terminating-gateway": 0}
    for row in rows:
        kind = row.get("ServiceKind") or ""
        if kind in kinds:
            kinds[kind] += 1
        elif (row.get("ServiceConnect") or {}).get("Native"):
            kinds["connect-native"] += 1
    billable = sum(1 for row in rows if not row.get("ServiceKind") and row.get("ServiceName") != "consul")
    figures = {"Services": len({row["ServiceName"] for row in rows}), "ServiceInstances": len(rows),
               "ConnectServiceInstances": kinds, "BillableServiceInstances": billable,
               "Nodes": len(parts.catalog.nodes())}
    ctx = current_ctx()
    return json_response({"Usage": {ctx.config.datacenter: figures}, "Index": ctx.state.index, "LastContact": 0,
                          "KnownLeader": True, "ConsistencyLevel": "", "NotModified": False, "Backend": 0,
                          "ResultsFilteredByACLs": False}, index=ctx.state.index)
