"""service.json `traffic`: subsets, splits and HTTP routes of a service → `Traffic`. Pure.

    "traffic": {
      "subsets": {"v1": {"filter": "Service.Meta.version == \\"1\\""}, "v2": {"filter": "..."}},
      "default_subset": "v1",
      "splits": [{"weight": 90, "subset": "v1"}, {"weight": 10, "subset": "v2"}],
      "routes": [{"match": {"path_prefix": "/admin", "header": [{"name": "x-debug", "exact": "1"}],
                            "methods": ["GET"]},
                  "destination": {"subset": "v2", "prefix_rewrite": "/", "request_timeout": "2s",
                                  "num_retries": 2}}]
    }

Keys are service.json's snake_case spelling of Consul's service-resolver / service-splitter /
service-router fields (`subset` is Consul's `ServiceSubset`); deploy writes them as those entries.
Found here, with the field to fix: weights adding up to 100 (in 0.01 steps), a split or route to
a subset no one declares, routes and splits on a service whose protocol is tcp (Consul: "does not
permit advanced routing or splitting behavior"). The rest of Consul's own rules (subset names,
route matches) are checked with Consul's texts by `nomadmesh.mesh.policy.policy_problems`, as for
intentions. Splits differ per environment through `envs/<env>.json` like any other field.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from nomadmesh.definitions.fields import Obj, Reader, got, join
from nomadmesh.definitions.model import Route, Service, Split, Subset, Traffic
from nomadmesh.durations import go_duration, parse_ns
from nomadmesh.errors import Problem

HUNDREDTHS = 100  # Consul keeps split weights in steps of 0.01

TRAFFIC = "traffic"
TRAFFIC_KEYS = ("subsets", "default_subset", "splits", "routes")
SUBSET_KEYS = ("filter", "only_passing")
SPLIT_KEYS = ("weight", "subset", "service")
ROUTE_KEYS = ("match", "destination")
# service.json spelling -> Consul's field, for the route's match and destination.
MATCH_FIELDS = {"path_exact": "PathExact", "path_prefix": "PathPrefix", "path_regex": "PathRegex",
                "header": "Header", "query_param": "QueryParam", "methods": "Methods"}
HEADER_FIELDS = {"name": "Name", "present": "Present", "exact": "Exact", "prefix": "Prefix", "suffix": "Suffix",
                 "regex": "Regex", "invert": "Invert"}
QUERY_FIELDS = {"name": "Name", "present": "Present", "exact": "Exact", "regex": "Regex"}
DESTINATION_FIELDS = {"service": "Service", "subset": "ServiceSubset", "prefix_rewrite": "PrefixRewrite",
                      "request_timeout": "RequestTimeout", "idle_timeout": "IdleTimeout",
                      "num_retries": "NumRetries", "retry_on_connect_failure": "RetryOnConnectFailure",
                      "retry_on": "RetryOn", "retry_on_status_codes": "RetryOnStatusCodes"}
HTTP_LIKE = ("http", "http2", "grpc")
PROTOCOL_PATH = "service.connect.sidecar_service.proxy.config.protocol"


def parse_traffic(r: Reader, raw: Any, name: str, protocol: str | None, connect: bool) -> Traffic:
    """Read `traffic`; problems go to `r`, bad parts are left out of the returned Traffic."""
    t = r.obj(raw, TRAFFIC, TRAFFIC_KEYS)
    if t is None:
        return Traffic()
    if not connect:
        r.error(TRAFFIC, "needs a Connect service (service.connect): its callers' sidecars do the routing")
        return Traffic()
    subsets = _subsets(r, t)
    declared = {s.name for s in subsets}
    default = t.string("default_subset") or ""
    if default and default not in declared:
        r.error(t.at("default_subset"), _not_declared(default, declared))
        default = ""
    splits = _splits(r, t, name, declared)
    routes = _routes(r, t, name, declared)
    proto = protocol or "tcp"
    for key, present in (("splits", splits), ("routes", routes)):
        if present and proto not in HTTP_LIKE:
            r.error(t.at(key), f"{key} need an HTTP protocol, but {name!r} is {proto}; declare it in "
                    f'{PROTOCOL_PATH.rsplit(".", 1)[0]}: {{"protocol": "http"}} (or http2, grpc)')
    return Traffic(subsets, default, splits, routes)


def _not_declared(subset: str, declared: set[str]) -> str:
    known = ", ".join(sorted(declared)) or "none"
    return f"{subset!r} is not a subset declared in traffic.subsets (declared: {known})"


def _subsets(r: Reader, t: Obj) -> tuple[Subset, ...]:
    if not t.has("subsets"):
        return ()
    raw = t.raw("subsets")
    if not isinstance(raw, dict):
        r.error(t.at("subsets"), f"must be an object of subset name to {{\"filter\": ...}}, {got(raw)}")
        return ()
    out = []
    for sub_name in sorted(raw):
        where = join(t.at("subsets"), sub_name)
        so = r.obj(raw[sub_name], where, SUBSET_KEYS)
        if so is None:
            continue
        text = so.string("filter", required=True, nonempty=True)
        passing = so.boolean("only_passing") or False
        if text is not None:
            out.append(Subset(sub_name, text, passing))
    return tuple(out)


def _splits(r: Reader, t: Obj, name: str, declared: set[str]) -> tuple[Split, ...]:
    if not t.has("splits"):
        return ()
    items = r.array(t.raw("splits"), t.at("splits"))
    if items is None:
        return ()
    if not items:
        r.error(t.at("splits"), "must list at least one split (or leave splits out)")
        return ()
    out: list[Split] = []
    seen: dict[tuple[str, str], str] = {}
    bad = False
    for i, item in enumerate(items):
        so = r.obj(item, join(t.at("splits"), i), SPLIT_KEYS)
        if so is None:
            bad = True
            continue
        weight = _weight(r, so)
        subset = so.string("subset", nonempty=True) or ""
        service = so.name("service") or ""
        if subset and service in ("", name) and subset not in declared:
            r.error(so.at("subset"), _not_declared(subset, declared))
            bad = True
        dest = (service or name, subset)
        if dest in seen:
            r.error(so.path, f"sends to the same place as {seen[dest]} (service {dest[0]!r}, subset "
                    f"{dest[1] or '(default)'!r}): merge the two weights")
            bad = True
        seen[dest] = so.path
        if weight is None:
            bad = True
            continue
        out.append(Split(weight, subset, "" if service == name else service))
    if not bad:
        total = sum(round(s.weight * HUNDREDTHS) for s in out)
        if total != 100 * HUNDREDTHS:
            r.error(t.at("splits"), f"the weights add up to {total / HUNDREDTHS:g}, they must add up to 100")
    return tuple(out)


def _weight(r: Reader, so: Obj) -> float | None:
    value = so.raw("weight")
    if "weight" not in so.data:
        r.error(so.at("weight"), "is required (a percentage: 10 sends a tenth of the calls here)")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        r.error(so.at("weight"), f"must be a number from 0 to 100, {got(value)}")
        return None
    if abs(value * HUNDREDTHS - round(value * HUNDREDTHS)) > 1e-6:
        r.error(so.at("weight"), f"must be in steps of 0.01 (Consul keeps no finer share), got {value}")
        return None
    return float(value)


def _routes(r: Reader, t: Obj, name: str, declared: set[str]) -> tuple[Route, ...]:
    if not t.has("routes"):
        return ()
    items = r.array(t.raw("routes"), t.at("routes"))
    out = []
    for i, item in enumerate(items or ()):
        where = join(t.at("routes"), i)
        ro = r.obj(item, where, ROUTE_KEYS)
        if ro is None:
            continue
        match = _fields(r, ro, "match", MATCH_FIELDS)
        dest = _fields(r, ro, "destination", DESTINATION_FIELDS)
        if match is None or dest is None:
            continue
        if not ro.has("destination"):
            r.error(ro.at("destination"), "is required: where the matching calls go (service, subset)")
            continue
        service, subset = str(dest.get("Service", "")), str(dest.get("ServiceSubset", ""))
        if subset and service in ("", name) and subset not in declared:
            r.error(join(ro.at("destination"), "subset"), _not_declared(subset, declared))
            continue
        route: dict[str, Any] = {"Destination": dest}
        if match:
            route["Match"] = {"HTTP": match}
        out.append(Route(json.dumps(route, sort_keys=True), "" if service == name else service, subset, where))
    return tuple(out)


def _fields(r: Reader, ro: Obj, key: str, fields: Mapping[str, str]) -> dict[str, Any] | None:
    """One route object (match or destination) in Consul's spelling; None when malformed."""
    if not ro.has(key):
        return {}
    o = r.obj(ro.raw(key), ro.at(key), fields)
    if o is None:
        return None
    out: dict[str, Any] = {}
    ok = True
    for k, consul_key in fields.items():
        if not o.has(k):
            continue
        value = _field(r, o, k)
        if value is None:
            ok = False
        else:
            out[consul_key] = value
    return out if ok else None


def _field(r: Reader, o: Obj, key: str) -> Any:
    if key in ("request_timeout", "idle_timeout"):
        text = o.duration(key)
        return None if text is None else go_duration(parse_ns(text))
    if key == "num_retries":
        return o.integer(key, 0)
    if key in ("retry_on_connect_failure",):
        return o.boolean(key)
    if key in ("methods", "retry_on"):
        values = o.strings(key)
        return None if values is None else [v.upper() if key == "methods" else v for v in values]
    if key == "retry_on_status_codes":
        items = r.array(o.raw(key), o.at(key))
        if items is None or not all(isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599
                                    for c in items):
            r.error(o.at(key), "must be an array of HTTP status codes (100 to 599)")
            return None
        return list(items)
    if key in ("header", "query_param"):
        return _matchers(r, o, key, HEADER_FIELDS if key == "header" else QUERY_FIELDS)
    if key == "service":
        return o.name(key)
    return o.string(key, nonempty=True)


def _matchers(r: Reader, o: Obj, key: str, fields: Mapping[str, str]) -> list[dict[str, Any]] | None:
    items = r.array(o.raw(key), o.at(key))
    if items is None:
        return None
    out = []
    for j, item in enumerate(items):
        mo = r.obj(item, join(o.at(key), j), fields)
        if mo is None:
            return None
        one: dict[str, Any] = {}
        for k, consul_key in fields.items():
            if not mo.has(k):
                continue
            value = mo.boolean(k) if k in ("present", "invert") else mo.string(k)
            if value is None:
                return None
            one[consul_key] = value
        out.append(one)
    return out


def traffic_problems(services: Iterable[Service], external: Iterable[str]) -> list[Problem]:
    """Splits and routes to other services: the service must be defined here (or be external), have
    the same protocol (Consul: "uses inconsistent protocols"), and a subset of it must be one it declares."""
    by_name = {s.name: s for s in services}
    outside = set(external)
    problems = []
    for s in by_name.values():
        targets = [(sp.service, sp.subset, f"{TRAFFIC}.splits") for sp in s.traffic.splits]
        targets += [(rt.service, rt.subset, f"{rt.where}.destination") for rt in s.traffic.routes]
        for other, subset, where in targets:
            if not other:
                continue
            target = by_name.get(other)
            if target is None:
                if other not in outside:
                    problems.append(Problem(s.source, where, f"{other!r} is not a service defined here or in "
                                            "external_services"))
                continue
            declared = {x.name for x in target.traffic.subsets}
            mine, theirs = s.protocol or "tcp", target.protocol or "tcp"
            if mine != theirs:
                problems.append(Problem(s.source, where, f"{other!r} is {theirs} but {s.name!r} is {mine}: Consul "
                                        "refuses a discovery chain whose services have different protocols"))
            elif subset and subset not in declared:
                problems.append(Problem(s.source, where, f"{subset!r} is not a subset {other!r} declares in its "
                                        f"traffic.subsets ({target.source})"))
    return problems
