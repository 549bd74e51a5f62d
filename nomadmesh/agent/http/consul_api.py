"""The dev agent's Consul HTTP API: one Quart app (asyncio), one blueprint per area.

    consul_agent.py       /v1/agent/{self,members,reload,services,service/register,service/deregister,checks,
                          check/*,service/maintenance,maintenance}, /v1/status
    consul_metrics.py     /v1/agent/metrics (JSON or ?format=prometheus)
    consul_catalog.py     /v1/catalog/{services,service,connect,nodes,node,register,deregister},
                          /v1/health/{service,connect,ingress,checks,node,state}
    consul_filtering.py   `?filter=` on the list endpoints (compiled before a blocking wait)
    consul_kv.py          /v1/kv/<key> (with ?acquire= / ?release= locks)
    consul_txn.py         /v1/txn (KV operations, all applied or none)
    consul_events.py      /v1/event/{fire/<name>,list} (user events, kept in memory)
    consul_coordinate.py  /v1/coordinate/{datacenters,nodes,node/<node>,update}
    consul_operator.py    /v1/operator/{autopilot/*,raft/peer,raft/transfer-leader,keyring,usage}
    consul_agent_ops.py   /v1/agent/{leave,force-leave,monitor}, /v1/acl/* and /v1/agent/token/* (ACLs disabled)
    consul_gateways.py    /v1/catalog/gateway-services/<gateway>
    consul_session.py     /v1/session/{create,destroy,info,list,node,renew}
    consul_config.py      /v1/config[/<kind>[/<name>]]
    consul_discovery_chain.py  /v1/discovery-chain/<service> (the compiled router/splitter/resolver chain)
    consul_intentions.py  /v1/connect/intentions[/exact|/check|/match]
    consul_connect.py     /v1/connect/ca/roots, /v1/agent/connect/ca/{roots,leaf/<service>}
    consul_sidecar_stats.py  /v1/nomadmesh/sidecar/<id>/stats (dev agent only, not Consul's)
    consul_proxy_status.py   /v1/nomadmesh/proxies: Envoy's last refusal per proxy, fail-closed or not (dev only)

Errors are plain text with Consul's status codes, as Consul answers them; py-consul turns them
into its exceptions. Reads that Consul lets block take `?index=&wait=` (common.block).
"""
from __future__ import annotations

import logging

from quart import Quart, Response
from werkzeug.exceptions import HTTPException
from werkzeug.routing import PathConverter

from nomadmesh.agent.http import (
    consul_agent,
    consul_agent_ops,
    consul_catalog,
    consul_config,
    consul_connect,
    consul_coordinate,
    consul_discovery_chain,
    consul_events,
    consul_gateways,
    consul_intentions,
    consul_kv,
    consul_metrics,
    consul_operator,
    consul_proxy_status,
    consul_session,
    consul_sidecar_stats,
    consul_txn,
)
from nomadmesh.agent.http.common import MAX_BODY_BYTES, AnyCharPathConverter, HTTPError, load_body, text_response
from nomadmesh.agent.http.consul_filtering import refuse_other_datacenters
from nomadmesh.agent.http.parts import EXTENSION, ConsulParts
from nomadmesh.webguard import install as install_guard, own_address

log = logging.getLogger("nomadmesh.agent.consul")


class AnyPathConverter(PathConverter):
    """Like `path`, but also matches a leading '/' so KV can refuse such keys by name."""

    regex = "(?s:.)*?"
    part_isolating = False  # werkzeug infers True from a regex without '/'; keys span segments


def create_consul_app(parts: ConsulParts) -> Quart:
    ctx = parts.ctx
    app = Quart("nomadmesh.consul")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False  # "/v1/kv//x" must reach the KV view (and be refused), not redirect
    app.url_map.converters["anypath"] = AnyPathConverter
    app.url_map.converters["path"] = AnyCharPathConverter
    app.extensions[EXTENSION] = parts
    install_guard(app, own_address(ctx.config.bind, ctx.config.consul_port))
    app.before_request(load_body)  # after the guard: a refused request's body is never read
    app.before_request(refuse_other_datacenters)
    for module in (consul_agent, consul_catalog, consul_kv, consul_config, consul_intentions, consul_connect,
                   consul_sidecar_stats, consul_proxy_status, consul_session, consul_discovery_chain, consul_txn,
                   consul_events, consul_coordinate, consul_operator, consul_agent_ops,
                   consul_gateways):
        app.register_blueprint(module.bp)
    consul_metrics.install(app)  # /v1/agent/metrics, and every request timed into it
    # Quart's middleware hook (typed as a method); the hot leaf route skips its request machinery.
    app.asgi_app = consul_connect.FastLeaf(app.asgi_app, parts)  # type: ignore[method-assign,assignment]

    @app.get("/")
    async def _root() -> Response:
        # Consul with its UI redirects / to /ui/ (301); http checks on the agent's address pass.
        return Response("", status=301, headers={"Location": "/ui/"})

    @app.errorhandler(HTTPError)
    async def _coded(e: HTTPError) -> Response:
        return text_response(e.status, e.message)

    @app.errorhandler(HTTPException)
    async def _http(e: HTTPException) -> Response:
        if e.code == 413:
            return text_response(413, f"Request body too large, max size: {MAX_BODY_BYTES} bytes")
        if e.code == 405:
            return text_response(405, "method not allowed")
        return text_response(e.code or 500, e.description or e.name)

    @app.errorhandler(Exception)
    async def _crash(e: Exception) -> Response:
        # A bug must neither take the agent down nor leak a traceback to clients; it goes to the log.
        log.exception("Consul API request failed")
        return text_response(500, f"internal error: {type(e).__name__}: {e}")

    return app
