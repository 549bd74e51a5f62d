"""/v1/search and /v1/search/fuzzy (nomad/search.py), /v1/operator/raft/configuration (a cluster of
one server) and /v1/scaling/policies (none: the agent refuses `scaling` blocks), as Nomad answers."""
from __future__ import annotations

from collections.abc import Callable
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


Search = Callable[[search.Holdings, str, str], tuple[dict[str, Any], dict[str, bool]]]


def _search(run: Search, term_field: str) -> Response:
    """Both searches: the request's term (`Prefix` or `Text`) and `Context` run over the holdings of
    the request's namespace; a bad context is Nomad's 500."""
    body = json_body()
    check_fields(body, QUERY_FIELDS, "search request")
    try:
        matches, truncations = run(_holdings(request_namespace()), str(body.get(term_field) or ""),
                                   str(body.get("Context") or ""))
    except search.SearchError as e:
        raise HTTPError(500, str(e)) from None
    index = ctx().state.index
    return reply({"Matches": matches, "Truncations": truncations, "Index": index, "LastContact": 0,
                  "KnownLeader": True, "NextToken": ""}, index)


@bp.route("/v1/search", methods=["POST", "PUT"])
def prefix_search() -> Response:
    return _search(search.prefix_search, "Prefix")


@bp.route("/v1/search/fuzzy", methods=["POST", "PUT"])
def fuzzy_search() -> Response:
    return _search(search.fuzzy_search, "Text")


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
