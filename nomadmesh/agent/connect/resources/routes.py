"""RDS: one RouteConfiguration per HTTP upstream, from its compiled discovery chain (Consul's
routes.go, makeUpstreamRouteForDiscoveryChain).

The route configuration and its one virtual host are named after the upstream (its destination
service), as Consul names them; domains `*`. What the chain starts with decides the routes:

    router    its routes in order (path exact/prefix/regex, headers, query parameters, methods),
              then the catch-all `/`; each sends to a cluster or to weighted clusters, with the
              destination's prefix rewrite, request timeout, idle timeout and retries
    splitter  one `/` route to weighted clusters
    resolver  one `/` route to its target's cluster (with the resolver's RequestTimeout)

Weights are Consul's percentages × 100 (Envoy sums them: 10000 in all); a 0 leg is left out.
Regexes go to Envoy as `safe_regex` (RE2), as everywhere else in the mesh. RequestHeaders /
ResponseHeaders of a route's destination apply to the route, those of a split to its leg: `Add`
appends, `Set` overwrites, `Remove` removes (Consul's injectHeaderManip*).
"""
from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2, route_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from nomadmesh.agent.connect.snapshot import ProxySnapshot, UpstreamSnap
from nomadmesh.agent.consul.discovery_chain import RESOLVER, ROUTER, SPLITTER, Chain, Node, duration_ns


def route_name(up: UpstreamSnap) -> str:
    """The upstream's RouteConfiguration (and virtual host) name: Consul's upstream EnvoyID
    (`db`, or `db?dc=dc2` for an upstream in another datacenter)."""
    return f"{up.destination}?dc={up.datacenter}" if up.datacenter else up.destination


def _duration(ns: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(ns)
    return d


def _regex(pattern: str) -> regex_pb2.RegexMatcher:
    return regex_pb2.RegexMatcher(regex=pattern)


def _string_match(spec: dict[str, Any]) -> string_pb2.StringMatcher | None:
    if spec.get("Exact") not in (None, ""):
        return string_pb2.StringMatcher(exact=str(spec["Exact"]))
    if spec.get("Regex") not in (None, ""):
        return string_pb2.StringMatcher(safe_regex=_regex(str(spec["Regex"])))
    if spec.get("Prefix") not in (None, ""):
        return string_pb2.StringMatcher(prefix=str(spec["Prefix"]))
    if spec.get("Suffix") not in (None, ""):
        return string_pb2.StringMatcher(suffix=str(spec["Suffix"]))
    return None


def route_match(definition: dict[str, Any]) -> rc_pb2.RouteMatch:
    """Consul's makeRouteMatchForDiscoveryRoute: no HTTP match is prefix `/`."""
    http = (definition.get("Match") or {}).get("HTTP") or {}
    match = rc_pb2.RouteMatch()
    if http.get("PathExact"):
        match.path = str(http["PathExact"])
    elif http.get("PathPrefix"):
        match.prefix = str(http["PathPrefix"])
    elif http.get("PathRegex"):
        match.safe_regex.CopyFrom(_regex(str(http["PathRegex"])))
    else:
        match.prefix = "/"
    if http.get("CaseInsensitive"):
        match.case_sensitive.CopyFrom(wrappers_pb2.BoolValue(value=False))
    for header in http.get("Header") or []:
        hm = rc_pb2.HeaderMatcher(name=str(header.get("Name") or ""), invert_match=bool(header.get("Invert")))
        matcher = _string_match(header)
        if matcher is not None:
            hm.string_match.CopyFrom(matcher)
        elif header.get("Present"):
            hm.present_match = True
        match.headers.append(hm)
    if http.get("Methods"):
        match.headers.append(rc_pb2.HeaderMatcher(name=":method", string_match=string_pb2.StringMatcher(
            safe_regex=_regex("|".join(http["Methods"])))))
    for param in http.get("QueryParam") or []:
        qm = rc_pb2.QueryParameterMatcher(name=str(param.get("Name") or ""))
        matcher = _string_match({k: param.get(k) for k in ("Exact", "Regex")})
        if matcher is not None:
            qm.string_match.CopyFrom(matcher)
        elif param.get("Present"):
            qm.present_match = True
        match.query_parameters.append(qm)
    return match


def _retry_policy(dest: dict[str, Any]) -> rc_pb2.RetryPolicy | None:
    """Consul's makeRetryPolicy: RetryOn, then connect-failure, then retriable-status-codes."""
    num = int(dest.get("NumRetries") or 0)
    conditions = [str(c) for c in dest.get("RetryOn") or []]
    if dest.get("RetryOnConnectFailure"):
        conditions.append("connect-failure")
    codes = [int(c) for c in dest.get("RetryOnStatusCodes") or []]
    if codes:
        conditions.append("retriable-status-codes")
    if not (num or conditions):
        return None
    policy = rc_pb2.RetryPolicy(retry_on=",".join(conditions), retriable_status_codes=codes)
    if num:
        policy.num_retries.CopyFrom(wrappers_pb2.UInt32Value(value=num))
    return policy


def _header_options(values: Any, add: bool) -> list[base_pb2.HeaderValueOption]:
    action = (base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD if add
              else base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD)
    return [base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=str(k), value=str(v)), append_action=action)
            for k, v in sorted((values or {}).items())]


def apply_headers(target: rc_pb2.Route | rc_pb2.WeightedCluster.ClusterWeight, spec: dict[str, Any]) -> None:
    """A destination's or a split's RequestHeaders / ResponseHeaders onto a route or a weighted leg."""
    for field_name, prefix in (("RequestHeaders", "request"), ("ResponseHeaders", "response")):
        headers = spec.get(field_name) or {}
        getattr(target, f"{prefix}_headers_to_add").extend(
            _header_options(headers.get("Add"), True) + _header_options(headers.get("Set"), False))
        getattr(target, f"{prefix}_headers_to_remove").extend(str(h) for h in headers.get("Remove") or [])


def hash_policies(node: Node) -> list[rc_pb2.RouteAction.HashPolicy]:
    """A hash-based balancer's HashPolicies (Consul's injectLBToRouteAction): source IP, a header, a
    cookie (a session cookie has TTL 0) or a query parameter."""
    if not node.is_hash_based:
        return []
    out = []
    for spec in node.load_balancer.get("HashPolicies") or []:
        hp = rc_pb2.RouteAction.HashPolicy(terminal=bool(spec.get("Terminal")))
        value = str(spec.get("FieldValue") or "")
        if spec.get("SourceIP"):
            hp.connection_properties.source_ip = True
        elif spec.get("Field") == "header":
            hp.header.header_name = value
        elif spec.get("Field") == "cookie":
            hp.cookie.name = value
            cookie = spec.get("CookieConfig") or {}
            if cookie.get("Path"):
                hp.cookie.path = str(cookie["Path"])
            if cookie.get("Session"):
                hp.cookie.ttl.CopyFrom(_duration(0))
            elif duration_ns(cookie.get("TTL")):
                hp.cookie.ttl.CopyFrom(_duration(duration_ns(cookie["TTL"])))
        elif spec.get("Field") == "query_parameter":
            hp.query_parameter.name = value
        else:
            continue
        out.append(hp)
    return out


def _cluster_action(chain: Chain, node: Node) -> rc_pb2.RouteAction:
    """Send to a resolver node's target, or across a splitter node's legs."""
    if node.type == RESOLVER:
        action = rc_pb2.RouteAction(cluster=chain.resolver_target(node.key).sni, hash_policy=hash_policies(node))
        assert node.resolver is not None
        if node.resolver.request_timeout_ns:
            action.timeout.CopyFrom(_duration(node.resolver.request_timeout_ns))
        return action
    clusters = []
    for split in node.splits:
        if split.weight <= 0:
            continue
        leg = rc_pb2.WeightedCluster.ClusterWeight(name=chain.resolver_target(split.next_node).sni,
                                                   weight=wrappers_pb2.UInt32Value(value=round(split.weight * 100)))
        apply_headers(leg, split.definition)
        clusters.append(leg)
    return rc_pb2.RouteAction(weighted_clusters=rc_pb2.WeightedCluster(clusters=clusters),
                              hash_policy=hash_policies(node))


def _router_routes(chain: Chain, node: Node) -> list[rc_pb2.Route]:
    out = []
    for route in node.routes:
        action = _cluster_action(chain, chain.node(route.next_node))
        dest = route.definition.get("Destination") or {}
        if dest.get("PrefixRewrite"):
            action.prefix_rewrite = str(dest["PrefixRewrite"])
        if duration_ns(dest.get("RequestTimeout")) > 0:
            action.timeout.CopyFrom(_duration(duration_ns(dest["RequestTimeout"])))
        if duration_ns(dest.get("IdleTimeout")) > 0:
            action.idle_timeout.CopyFrom(_duration(duration_ns(dest["IdleTimeout"])))
        retry = _retry_policy(dest)
        if retry is not None:
            action.retry_policy.CopyFrom(retry)
        envoy_route = rc_pb2.Route(match=route_match(route.definition), route=action)
        apply_headers(envoy_route, dest)
        out.append(envoy_route)
    return out


def upstream_routes(snap: ProxySnapshot, up: UpstreamSnap) -> route_pb2.RouteConfiguration:
    chain = snap.chain_of(up)
    start = chain.node(chain.start_node)
    if start.type == ROUTER:
        routes = _router_routes(chain, start)
    else:
        assert start.type in (SPLITTER, RESOLVER)
        routes = [rc_pb2.Route(match=rc_pb2.RouteMatch(prefix="/"), route=_cluster_action(chain, start))]
    name = route_name(up)
    return route_pb2.RouteConfiguration(
        name=name, virtual_hosts=[rc_pb2.VirtualHost(name=name, domains=["*"], routes=routes)])


def routes_from_snapshot(snap: ProxySnapshot) -> list[route_pb2.RouteConfiguration]:
    """One route configuration per upstream whose chain is HTTP-like (tcp ones use tcp_proxy)."""
    out: dict[str, route_pb2.RouteConfiguration] = {}
    for up in snap.upstreams:  # two upstreams of one destination (other ports) share its routes
        if route_name(up) not in out and snap.chain_of(up).is_http:
            out[route_name(up)] = upstream_routes(snap, up)
    return list(out.values())
