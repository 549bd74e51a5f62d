"""Consul's discovery chain: a service's service-router → service-splitter → service-resolver
entries compiled into one graph of nodes and targets (agent/consul/discoverychain/compile.go).
Pure: `compile_chain(service, lookup, datacenter, trust_domain)` reads entries only through
`lookup(kind, name)`; the proxy snapshots (connect/proxies.py) and GET /v1/discovery-chain use it.

    router   the router entry of the chain's own service: its routes in order, then Consul's
             catch-all `PathPrefix /` to the service itself
    splitter a service's splitter: weighted legs (a leg to another service with a splitter of
             its own is flattened into this one, weights multiplied, as Consul does)
    resolver one target: `<subset>.<service>.<namespace>.<partition>.<dc>`, after the resolver's
             Redirect and DefaultSubset; its ConnectTimeout (default 5s) and Failover targets

With no entries the chain is one default resolver. Routers and splitters need an HTTP-like
protocol (service-defaults, else proxy-defaults `global`, else tcp); every service in the chain
must share one protocol. A graph Consul would refuse raises ChainError with Consul's text.

Stored entries keep the key spelling they were written with (Consul's decoder takes any case and
snake_case), so `canonical()` folds them to Go field names first; user-named keys (subset names,
failover keys, header maps) are left as written.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nomadmesh.durations import DurationError, go_duration, parse_ns

Lookup = Callable[[str, str], "dict[str, Any] | None"]  # (kind, name) -> stored entry

NAMESPACE = PARTITION = "default"
HTTP_LIKE = ("http", "http2", "grpc")
DEFAULT_CONNECT_TIMEOUT_NS = 5_000_000_000
HASH_POLICIES = ("ring_hash", "maglev")
ROUTER, SPLITTER, RESOLVER = "router", "splitter", "resolver"


class ChainError(ValueError):
    """The entries form a graph Consul refuses (its ConfigEntryGraphError text)."""


# --- key folding --------------------------------------------------------------------------------

_GO_NAMES = (
    "Kind", "Name", "Meta", "Protocol", "DefaultSubset", "Subsets", "Filter", "OnlyPassing", "Redirect", "Failover",
    "Service", "ServiceSubset", "Namespace", "Partition", "Datacenter", "Datacenters", "Peer", "SamenessGroup",
    "Targets", "Policy", "ConnectTimeout", "RequestTimeout", "LoadBalancer", "Splits", "Weight", "RequestHeaders",
    "ResponseHeaders", "Routes", "Match", "HTTP", "PathExact", "PathPrefix", "PathRegex", "CaseInsensitive",
    "Header", "QueryParam", "Methods", "Present", "Exact", "Prefix", "Suffix", "Regex", "Contains", "IgnoreCase",
    "Invert", "Destination", "PrefixRewrite", "IdleTimeout", "NumRetries", "RetryOnConnectFailure", "RetryOn",
    "RetryOnStatusCodes", "Add", "Set", "Remove", "LeastRequestConfig", "ChoiceCount", "RingHashConfig",
    "MinimumRingSize", "MaximumRingSize", "HashPolicies", "Field", "FieldValue", "CookieConfig", "Session", "TTL",
    "Path", "SourceIP", "Terminal",
)
_BY_FOLD = {n.lower(): n for n in _GO_NAMES}
_NAMED_MAPS = ("Subsets", "Failover")  # keys are user names, values are structs
_OPAQUE = ("Meta", "Add", "Set", "Policy")  # kept as written


def _fold(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def canonical(value: Any, key: str = "") -> Any:
    """A stored entry with Go field names (any case, snake_case in → Consul's spelling out)."""
    if key in _OPAQUE:
        return value
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if not isinstance(value, dict):
        return value
    if key in _NAMED_MAPS:
        return {str(k): canonical(v) for k, v in value.items()}
    out = {}
    for k, v in value.items():
        name = _BY_FOLD.get(_fold(str(k)), str(k))
        out[name] = canonical(v, name)
    return out


def duration_ns(value: Any, default: int = 0) -> int:
    """A duration as Consul decodes it: a Go duration string, or a number of nanoseconds."""
    if value in (None, ""):
        return default
    if isinstance(value, bool):
        raise ChainError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        return int(value)
    try:
        return parse_ns(str(value))
    except DurationError as e:
        raise ChainError(str(e)) from None


# --- the compiled chain ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where one resolver sends traffic: a service (or one subset of it) in a datacenter."""

    id: str
    service: str
    subset: str
    datacenter: str
    sni: str  # also the Envoy cluster name (Consul's Target.Name)
    connect_timeout_ns: int = DEFAULT_CONNECT_TIMEOUT_NS
    filter: str = ""  # the subset's bexpr over the instances ("" = every instance)
    only_passing: bool = False  # the subset counts a warning check as unhealthy
    mesh_gateway_mode: str = ""  # only ever set by a request's OverrideMeshGateway

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ID": self.id, "Service": self.service}
        if self.subset:
            out["ServiceSubset"] = self.subset
        out.update({"Namespace": NAMESPACE, "Partition": PARTITION, "Datacenter": self.datacenter,
                    "MeshGateway": {"Mode": self.mesh_gateway_mode} if self.mesh_gateway_mode else {},
                    "Subset": _subset_json(self.filter, self.only_passing),
                    "TransparentProxy": {}, "ConnectTimeout": go_duration(self.connect_timeout_ns),
                    "SNI": self.sni, "Name": self.sni})
        return out


def _number(weight: float) -> float | int:
    """A float32 weight as Go's JSON writes it: 50, not 50.0."""
    return int(weight) if float(weight).is_integer() else weight


def _subset_json(filter_: str, only_passing: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if filter_:
        out["Filter"] = filter_
    if only_passing:
        out["OnlyPassing"] = True
    return out


@dataclass(frozen=True)
class Resolver:
    target: str
    default: bool
    connect_timeout_ns: int
    request_timeout_ns: int = 0
    failover: tuple[str, ...] = ()  # target ids, in order


@dataclass(frozen=True)
class Split:
    weight: float
    next_node: str
    definition: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    definition: dict[str, Any]  # Consul's ServiceRoute: Match, Destination
    next_node: str


@dataclass(frozen=True)
class Node:
    type: str
    name: str
    routes: tuple[Route, ...] = ()
    splits: tuple[Split, ...] = ()
    resolver: Resolver | None = None
    load_balancer: dict[str, Any] = field(default_factory=dict)  # the resolver's LoadBalancer

    @property
    def is_hash_based(self) -> bool:
        return self.load_balancer.get("Policy") in HASH_POLICIES

    @property
    def key(self) -> str:
        return f"{self.type}:{self.name}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Type": self.type, "Name": self.name}
        if self.routes:
            out["Routes"] = [{"Definition": r.definition, "NextNode": r.next_node} for r in self.routes]
        if self.splits:
            out["Splits"] = [{"Definition": s.definition, "Weight": _number(s.weight), "NextNode": s.next_node}
                             for s in self.splits]
        if self.resolver is not None:
            r = self.resolver
            res: dict[str, Any] = {"Default": r.default, "ConnectTimeout": go_duration(r.connect_timeout_ns)}
            if r.request_timeout_ns:
                res["RequestTimeout"] = go_duration(r.request_timeout_ns)
            res["Target"] = r.target
            if r.failover:
                res["Failover"] = {"Targets": list(r.failover)}
            if not r.default:
                res.pop("Default")
            out["Resolver"] = res
        if self.load_balancer:
            out["LoadBalancer"] = self.load_balancer
        return out


@dataclass(frozen=True)
class Chain:
    service: str
    datacenter: str
    protocol: str
    start_node: str
    nodes: dict[str, Node]
    targets: dict[str, Target]
    default: bool = False
    service_meta: dict[str, str] = field(default_factory=dict)
    customization_hash: str = ""  # set when a request's overrides changed the result

    @property
    def is_http(self) -> bool:
        return self.protocol in HTTP_LIKE

    def node(self, key: str) -> Node:
        return self.nodes[key]

    def resolver_target(self, node_key: str) -> Target:
        """The target of a resolver node."""
        resolver = self.nodes[node_key].resolver
        assert resolver is not None, f"{node_key} is not a resolver node"
        return self.targets[resolver.target]

    def to_json(self) -> dict[str, Any]:
        """Consul's CompiledDiscoveryChain JSON (GET /v1/discovery-chain/:service's `Chain`)."""
        out: dict[str, Any] = {"ServiceName": self.service, "Namespace": NAMESPACE, "Partition": PARTITION,
                               "Datacenter": self.datacenter}
        if self.customization_hash:
            out["CustomizationHash"] = self.customization_hash
        if self.default:
            out["Default"] = True
        out["Protocol"] = self.protocol
        if self.service_meta:
            out["ServiceMeta"] = self.service_meta
        out["StartNode"] = self.start_node
        out["Nodes"] = {k: n.to_json() for k, n in sorted(self.nodes.items())}
        out["Targets"] = {k: t.to_json() for k, t in sorted(self.targets.items())}
        return out


def target_id(service: str, subset: str, datacenter: str) -> str:
    base = f"{service}.{NAMESPACE}.{PARTITION}.{datacenter}"
    return f"{subset}.{base}" if subset else base


def target_sni(service: str, subset: str, datacenter: str, trust_domain: str) -> str:
    """Consul's connect.TargetSNI in the default partition: `[<subset>.]<service>.default.<dc>.internal.<td>`."""
    base = f"{service}.{NAMESPACE}.{datacenter}.internal.{trust_domain}"
    return f"{subset}.{base}" if subset else base


# --- compilation ----------------------------------------------------------------------------------


def protocol_of(service: str, lookup: Lookup) -> str:
    """service-defaults Protocol, else proxy-defaults `global` Config.protocol, else tcp."""
    defaults = canonical(lookup("service-defaults", service) or {})
    if defaults.get("Protocol"):
        return str(defaults["Protocol"]).lower()
    proxy = lookup("proxy-defaults", "global") or {}
    config = next((v for k, v in proxy.items() if _fold(str(k)) == "config"), None) or {}
    value = config.get("protocol") if isinstance(config, dict) else None
    return str(value).lower() if value else "tcp"


@dataclass(frozen=True)
class Overrides:
    """What a POST /v1/discovery-chain request may override (Consul's CompileRequest Override*)."""

    protocol: str = ""
    connect_timeout_ns: int = 0
    mesh_gateway_mode: str = ""


@dataclass
class _Compiler:
    service: str
    lookup: Lookup
    datacenter: str
    trust_domain: str
    overrides: Overrides = Overrides()
    protocol: str = ""
    advanced: bool = False
    customized: dict[str, Any] = field(default_factory=dict)  # override name -> value that changed the result
    nodes: dict[str, Node] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)

    def entry(self, kind: str, name: str) -> dict[str, Any] | None:
        raw = self.lookup(kind, name)
        return canonical(raw) if raw is not None else None

    def record_protocol(self, service: str) -> None:
        proto = protocol_of(service, self.lookup)
        if not self.protocol:
            self.protocol = proto
        elif proto != self.protocol:
            raise ChainError(f'discovery chain "{self.service}" uses inconsistent protocols; service '
                             f'"{service}" has "{proto}" which is not "{self.protocol}"')

    @property
    def l4_override(self) -> bool:
        """An overridden protocol that is not HTTP-like: routers and splitters are left out."""
        return bool(self.overrides.protocol) and self.overrides.protocol not in HTTP_LIKE

    def l7_entry(self, kind: str, name: str) -> dict[str, Any] | None:
        entry = self.entry(kind, name)
        if entry is not None and self.l4_override:
            self.customized["OverrideProtocol"] = self.overrides.protocol
            return None
        return entry

    def compile(self) -> Chain:
        router = self.l7_entry("service-router", self.service)
        start = self.splitter_or_resolver(self.service, "") if router is None else self.router_node(router)
        if self.advanced and self.protocol not in HTTP_LIKE:
            raise ChainError(f'discovery chain "{self.service}" uses a protocol "{self.protocol}" that does not '
                             f'permit advanced routing or splitting behavior')
        if self.overrides.protocol and self.overrides.protocol != self.protocol:
            self.protocol = self.overrides.protocol
            self.customized["OverrideProtocol"] = self.overrides.protocol
        self.flatten_splitters()
        used = self.reachable(start)
        nodes = {k: n for k, n in self.nodes.items() if k in used}
        kept = {n.resolver.target for n in nodes.values() if n.resolver}
        kept |= {t for n in nodes.values() if n.resolver for t in n.resolver.failover}
        first = nodes[start]
        default = (first.type == RESOLVER and first.resolver is not None and first.resolver.default
                   and self.targets[first.resolver.target].service == self.service)
        meta = (self.entry("service-defaults", self.service) or {}).get("Meta") or {}
        digest = hashlib.sha256(repr(sorted(self.customized.items())).encode()).hexdigest()[:8]
        return Chain(self.service, self.datacenter, self.protocol or "tcp", start, nodes,
                     {k: t for k, t in self.targets.items() if k in kept}, default, dict(meta),
                     digest if self.customized else "")

    def router_node(self, router: dict[str, Any]) -> str:
        self.advanced = True
        self.record_protocol(self.service)
        routes = []
        for definition in router.get("Routes") or []:
            dest = definition.get("Destination") or {}
            svc = dest.get("Service") or self.service
            subset = dest.get("ServiceSubset") or ""
            nxt = self.resolver_node(svc, subset) if subset else self.splitter_or_resolver(svc, "")
            routes.append(Route(definition, nxt))
        catch_all = {"Match": {"HTTP": {"PathPrefix": "/"}},
                     "Destination": {"Service": self.service, "Namespace": NAMESPACE, "Partition": PARTITION}}
        routes.append(Route(catch_all, self.splitter_or_resolver(self.service, "")))
        node = Node(ROUTER, f"{self.service}.{NAMESPACE}.{PARTITION}", routes=tuple(routes))
        self.nodes[node.key] = node
        return node.key

    def splitter_or_resolver(self, service: str, subset: str) -> str:
        key = self.splitter_node(service, ())
        return key if key is not None else self.resolver_node(service, subset)

    def splitter_node(self, service: str, seen: tuple[str, ...]) -> str | None:
        name = f"{service}.{NAMESPACE}.{PARTITION}"
        key = f"{SPLITTER}:{name}"
        if key in self.nodes:
            return key
        splitter = self.l7_entry("service-splitter", service)
        if splitter is None:
            return None
        if service in seen:
            loop = " -> ".join(f"{SPLITTER}:{s}.{NAMESPACE}.{PARTITION}" for s in (*seen, service))
            raise ChainError(f"detected circular reference: [{loop}]")
        splits = []
        for definition in splitter.get("Splits") or []:
            svc = definition.get("Service") or service
            subset = definition.get("ServiceSubset") or ""
            nxt = None
            if svc != service and not subset:
                nxt = self.splitter_node(svc, (*seen, service))
            if nxt is None:
                nxt = self.resolver_node(svc, subset)
            splits.append(Split(float(definition.get("Weight") or 0), nxt, definition))
        self.advanced = True
        # One route action takes one hash policy: the first hash-based balancer of the legs, as Consul picks it.
        hashed = next((self.nodes[s.next_node].load_balancer for s in splits
                       if s.next_node in self.nodes and self.nodes[s.next_node].is_hash_based), {})
        node = Node(SPLITTER, name, splits=tuple(splits), load_balancer=hashed)
        self.nodes[key] = node
        return key

    def resolver_node(self, service: str, subset: str, for_failover: bool = False,
                      datacenter: str = "") -> str:
        dc = datacenter or self.datacenter
        history: list[str] = []
        while True:
            tid = target_id(service, subset, dc)
            if f"{RESOLVER}:{tid}" in self.nodes and not for_failover:
                return f"{RESOLVER}:{tid}"
            self.record_protocol(service)
            resolver = self.entry("service-resolver", service) or {}
            if tid in history:
                raise ChainError(f"detected circular resolver redirect: [{' -> '.join([*history, tid])}]")
            history.append(tid)
            redirect = resolver.get("Redirect") or {}
            if redirect:
                r_service = redirect.get("Service") or service
                r_subset = "" if r_service != service else subset
                r_subset = redirect.get("ServiceSubset") or r_subset
                r_dc = redirect.get("Datacenter") or dc
                if target_id(r_service, r_subset, r_dc) != tid:
                    service, subset, dc = r_service, r_subset, r_dc
                    continue
            if not subset and resolver.get("DefaultSubset"):
                subset = str(resolver["DefaultSubset"])
                continue
            break
        subsets = resolver.get("Subsets") or {}
        if subset and subset not in subsets:
            raise ChainError(f'service "{service}" does not have a subset named "{subset}"')
        timeout = duration_ns(resolver.get("ConnectTimeout"))
        if timeout < 1:
            timeout = DEFAULT_CONNECT_TIMEOUT_NS
        if self.overrides.connect_timeout_ns > 0 and timeout != self.overrides.connect_timeout_ns:
            timeout = self.customized["OverrideConnectTimeout"] = self.overrides.connect_timeout_ns
        if self.overrides.mesh_gateway_mode:
            self.customized["OverrideMeshGateway"] = self.overrides.mesh_gateway_mode
        spec = subsets.get(subset) or {} if subset else {}
        self.targets.setdefault(tid, Target(
            tid, service, subset, dc, target_sni(service, subset, dc, self.trust_domain), timeout,
            str(spec.get("Filter") or ""), bool(spec.get("OnlyPassing")), self.overrides.mesh_gateway_mode))
        failover = () if for_failover else self.failover_targets(resolver, service, subset, dc, tid)
        node = Node(RESOLVER, tid, resolver=Resolver(
            tid, _is_default(resolver), timeout, duration_ns(resolver.get("RequestTimeout")), failover),
            load_balancer=dict(resolver.get("LoadBalancer") or {}))
        if not for_failover:
            self.nodes[node.key] = node
        return node.key

    def failover_targets(self, resolver: dict[str, Any], service: str, subset: str, dc: str,
                         tid: str) -> tuple[str, ...]:
        failovers = resolver.get("Failover") or {}
        spec = failovers.get(subset, failovers.get("*"))
        if not spec:
            return ()
        wanted: list[tuple[str, str, str]] = []  # (service, subset, dc) before redirects

        def rewrite(opts: dict[str, Any]) -> tuple[str, str, str]:
            svc = opts.get("Service") or service
            sub = "" if svc != service else subset
            return svc, opts.get("ServiceSubset") or sub, opts.get("Datacenter") or dc

        if spec.get("Datacenters"):
            wanted = [rewrite({**spec, "Datacenter": d}) for d in spec["Datacenters"]]
        elif spec.get("Targets"):
            wanted = [rewrite(t) for t in spec["Targets"]]
        else:
            wanted = [rewrite(spec)]
        out = []
        for svc, sub, d in wanted:
            if target_id(svc, sub, d) == tid:
                continue  # never fail over to yourself
            out.append(self.nodes_target(self.resolver_node(svc, sub, for_failover=True, datacenter=d)))
        return tuple(out)

    @staticmethod
    def nodes_target(key: str) -> str:
        return key.split(":", 1)[1]

    def flatten_splitters(self) -> None:
        """A split leg into another splitter becomes that splitter's legs, weights multiplied."""
        changed = True
        while changed:
            changed = False
            for key, node in list(self.nodes.items()):
                if node.type != SPLITTER:
                    continue
                legs: list[Split] = []
                for split in node.splits:
                    inner = self.nodes[split.next_node]
                    if inner.type != SPLITTER:
                        legs.append(split)
                        continue
                    changed = True
                    legs += [Split(round(split.weight * s.weight / 100, 2), s.next_node,
                                   _merge_parent(s.definition, split.definition)) for s in inner.splits]
                self.nodes[key] = Node(SPLITTER, node.name, splits=tuple(legs), load_balancer=node.load_balancer)

    def reachable(self, start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            key = todo.pop()
            if key in seen:
                continue
            seen.add(key)
            node = self.nodes[key]
            todo += [r.next_node for r in node.routes] + [s.next_node for s in node.splits]
        return seen


def _merge_parent(inner: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
    """Consul's ServiceSplit.MergeParent: the inner leg's definition with the parent leg's header
    changes merged in (the inner leg's values win; removals add up)."""
    out = dict(inner)
    for name in ("RequestHeaders", "ResponseHeaders"):
        mine, theirs = inner.get(name) or {}, parent.get(name) or {}
        if not theirs:
            continue
        merged: dict[str, Any] = {op: {**(theirs.get(op) or {}), **(mine.get(op) or {})} for op in ("Add", "Set")}
        merged["Remove"] = [*(theirs.get("Remove") or []), *(mine.get("Remove") or [])]
        out[name] = {k: v for k, v in merged.items() if v}
    return out


def _is_default(resolver: dict[str, Any]) -> bool:
    """Consul's IsDefault: no resolver entry, or one that sets nothing beyond its identity."""
    return not any(v for k, v in resolver.items() if k not in ("Kind", "Name", "Meta", "Namespace", "Partition"))


def compile_chain(service: str, lookup: Lookup, datacenter: str, trust_domain: str,
                  overrides: Overrides = Overrides()) -> Chain:
    """The compiled discovery chain of `service` as seen from `datacenter`; ChainError when the
    entries form a graph Consul refuses. `overrides` are a POST request's (none for a proxy's
    upstream); the CustomizationHash they give is ours (Consul hashes with Go's hashstructure)."""
    if not service:
        raise ChainError("serviceName is required")
    return _Compiler(service, lookup, datacenter, trust_domain, overrides).compile()
