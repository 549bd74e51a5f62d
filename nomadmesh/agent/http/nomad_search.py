"""/v1/search and /v1/search/fuzzy (nomad/search.py), /v1/operator/raft/configuration (a cluster of
one server) and /v1/scaling/policies (none: the agent refuses `scaling` blocks), as Nomad answers."""
from __future__ import annotations

from typing import Any

from quart import Blueprint, Response

from nomadmesh.agent.http.nomad_ctx import ctx
from nomadmesh.agent.http.nomad_reads import RPC_PORT
from nomadmesh.agent.http.nomad_util import HTTPError, check_fields, in_namespace, json_body, reply, request_namespace
from nomadmesh.agent.nomad import namespaces, search, variables

bp = Blueprint("nomad_search", __name__)
QUERY_FIELDS = ("Namespace", "Region", "AllowStale", "AuthToken", "Params", "Prefix", "Text", "Context")


def _holdings(namespace: str) -> search.Holdings:
    state = ctx().state
    return search.Holdings(
        jobs=in_namespace(state.values("job")), allocs=in_namespace(state.values("alloc")),
        evals=in_namespace(state.values("eval")), deployments=in_namespace(state.values("deployment")),
        nodes=state.values("node"), namespaces=namespaces.listing(state),
        variables=variables.listing(ctx().state, namespace, ""))


def _request() -> tuple[dict[str, Any], str]:
    body = json_body()
    check_fields(body, QUERY_FIELDS, "search request")
    return body, str(body.get("Context") or "")


def _reply(matches: dict[str, Any], truncations: dict[str, bool]) -> Response:
    index = ctx().state.index
    return reply({"Matches": matches, "Truncations": truncations, "Index": index, "LastContact": 0,
                  "KnownLeader": True, "NextToken": ""}, index)


@bp.route("/v1/search", methods=["POST", "PUT"])
def prefix_search() -> Response:
    body, context = _request()
    try:
        found = search.prefix_search(_holdings(request_namespace()), str(body.get("Prefix") or ""), context)
    except search.SearchError as e:
        raise HTTPError(500, str(e)) from None
    return _reply(*found)


@bp.route("/v1/search/fuzzy", methods=["POST", "PUT"])
def fuzzy_search() -> Response:
    body, context = _request()
    try:
        found = search.fuzzy_search(_holdings(request_namespace()), str(body.get("Text") or ""), context)
    except search.SearchError as e:
        raise HTTPError(500, str(e)) from None
    return _reply(*found)


@bp.get("/v1/operator/raft/configuration")
def raft_configuration() -> Response:
    """Operator.RaftGetConfiguration: the one server, leader and voter."""
    c = ctx()
    cfg = c.config
    server = {"ID": c.node_id, "Node": f"{cfg.node_name}.{cfg.region}", "Address": f"{cfg.bind}:{RPC_PORT}",
              "Leader": True, "Voter": True, "RaftProtocol": "3"}
    return reply({"Servers": [server], "Index": c.state.index}, c.state.index)


@bp.get("/v1/scaling/policies")
def scaling_policies() -> Response:
    """No job on this agent has a scaling policy (the jobspec refuses `scaling` blocks)."""
    return reply([], ctx().state.index)


@bp.get("/v1/scaling/policy/<policy_id>")
def scaling_policy(policy_id: str) -> Response:
    raise HTTPError(404, "policy not found")
