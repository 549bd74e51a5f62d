"""Consul config entries: decoding, validation and the JSON Consul returns. Pure, no I/O.

Entries are stored as kind `config` under `<Kind>/<Name>`. Keys are matched the way Consul's
decoder matches them (any case, snake_case too) and written back in Go field names.
`service-intentions` entries are checked strictly (unknown keys are refused, as Consul's
mapstructure decoding with ErrorUnused does, and the sources go through
`nomadmesh.mesh.intentions.from_config_entry`), then through Consul's Validate rules
(`nomadmesh.mesh.intention_rules`: 500 with Consul's text, as Consul answers); service-router
entries through Consul's rules for them (`nomadmesh.mesh.router_rules`); service-resolver and
service-splitter entries are decoded as strictly as intentions and go through
`nomadmesh.mesh.resolver_rules` / `splitter_rules` (weights rounded to 0.01, durations written
back as Go strings); other kinds are stored as given once Kind and Name are sane, with
`service-defaults`' Protocol checked. Rules across entries (a splitter on a tcp service, a split
to a subset no resolver defines) are checked by the store (`config_store`, `nomadmesh.mesh.chain_rules`).

Consul also refuses a graph where an intention with L7 Permissions points at a service whose
protocol (service-defaults, else proxy-defaults `global`, else tcp) is not HTTP-like, whichever
of the entries is written last: `protocol_conflict` checks that.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from nomadmesh.agent.consul import ingress_gateway as ingress
from nomadmesh.agent.consul.filter import syntax_problem as filter_syntax_problem
from nomadmesh.mesh import entry_types, intention_rules, intentions as ixn, resolver_rules, router_rules, splitter_rules

KINDS = (
    "service-defaults", "proxy-defaults", "service-router", "service-splitter", "service-resolver",
    "ingress-gateway", "terminating-gateway", "service-intentions", "mesh", "exported-services",
    "api-gateway", "bound-api-gateway", "http-route", "tcp-route", "inline-certificate",
    "file-system-certificate", "jwt-provider", "sameness-group", "control-plane-request-limit",
    "registration",
)
PROTOCOLS = ("tcp", "http", "http2", "grpc")
HTTP_LIKE = ("http", "http2", "grpc")
READ_ONLY = ("CreateIndex", "ModifyIndex")

Lookup = Callable[[str, str], "dict[str, Any] | None"]  # (kind, name) -> stored entry


class EntryError(ValueError):
    """A config entry is refused; `message` is the one line the API answers with (status 400)."""

    status = 400


class EntryInvalid(EntryError):
    """The entry decoded but breaks one of Consul's Validate rules: Consul answers 500 with the text."""

    status = 500


# --- key folding ------------------------------------------------------------------------------

_HEADER = dict.fromkeys(("Name", "Present", "Exact", "Prefix", "Suffix", "Regex", "Contains", "IgnoreCase", "Invert"))
_HTTP = {"PathExact": None, "PathPrefix": None, "PathRegex": None, "Methods": None, "Header": [_HEADER]}
_PERMISSION = {"Action": None, "HTTP": _HTTP, "JWT": None}
_SOURCE = dict.fromkeys(("Name", "Peer", "Namespace", "Partition", "SamenessGroup", "Action", "Precedence", "Type",
                         "Description", "LegacyID", "LegacyMeta", "LegacyCreateTime", "LegacyUpdateTime"))
_SOURCE["Permissions"] = [_PERMISSION]
_INTENTIONS = {"Kind": None, "Name": None, "Namespace": None, "Partition": None, "Meta": None,
               "JWT": None, "Sources": [_SOURCE], "CreateIndex": None, "ModifyIndex": None}

# Discovery-chain entries (Go field names of ServiceResolverConfigEntry / ServiceSplitterConfigEntry /
# ServiceRouterConfigEntry). {"*": schema}: a map whose keys are names (subsets) and whose values
# follow `schema`. No top-level Namespace or Partition: Consul CE's EnterpriseMeta has no fields,
# so its decoder refuses them as unused keys.
_ENTRY = dict.fromkeys(("Kind", "Name", "Meta", "CreateIndex", "ModifyIndex"))
_TARGET = dict.fromkeys(("Service", "ServiceSubset", "Namespace", "Partition", "Datacenter", "Peer"))
_HASH_POLICY = {**dict.fromkeys(("Field", "FieldValue", "SourceIP", "Terminal")),
                "CookieConfig": dict.fromkeys(("Session", "TTL", "Path"))}
_RESOLVER = {
    **_ENTRY, "DefaultSubset": None, "ConnectTimeout": None, "RequestTimeout": None,
    "Subsets": {"*": dict.fromkeys(("Filter", "OnlyPassing"))},
    "Redirect": {**_TARGET, "SamenessGroup": None},
    "Failover": {"*": {**dict.fromkeys(("Service", "ServiceSubset", "Namespace", "Datacenters", "SamenessGroup")),
                       "Targets": [_TARGET], "Policy": dict.fromkeys(("Mode", "Regions"))}},
    "LoadBalancer": {"Policy": None, "RingHashConfig": dict.fromkeys(("MinimumRingSize", "MaximumRingSize")),
                     "LeastRequestConfig": dict.fromkeys(("ChoiceCount",)), "HashPolicies": [_HASH_POLICY]},
    "PrioritizeByLocality": dict.fromkeys(("Mode",)),
}
_HEADERS = dict.fromkeys(("Add", "Set", "Remove"))
_SPLITTER = {**_ENTRY, "Splits": [{**dict.fromkeys(("Weight", "Service", "ServiceSubset", "Namespace", "Partition")),
                                   "RequestHeaders": _HEADERS, "ResponseHeaders": _HEADERS}]}
_MATCH_VALUE = dict.fromkeys(("Name", "Present", "Exact", "Regex"))
_ROUTE_HTTP = {**dict.fromkeys(("PathExact", "PathPrefix", "PathRegex", "CaseInsensitive", "Methods")),
               "Header": [{**_MATCH_VALUE, **dict.fromkeys(("Prefix", "Suffix", "Contains", "IgnoreCase", "Invert"))}],
               "QueryParam": [_MATCH_VALUE]}
_DESTINATION = {**dict.fromkeys(("Service", "ServiceSubset", "Namespace", "Partition", "PrefixRewrite",
                                 "RequestTimeout", "IdleTimeout", "NumRetries", "RetryOnConnectFailure",
                                 "RetryOn", "RetryOnStatusCodes")),
                "RequestHeaders": _HEADERS, "ResponseHeaders": _HEADERS}
_ROUTER = {**_ENTRY, "Routes": [{"Match": {"HTTP": _ROUTE_HTTP}, "Destination": _DESTINATION}]}
_SCHEMAS: dict[str, dict[str, Any]] = {ixn.KIND: _INTENTIONS, resolver_rules.KIND: _RESOLVER,
                                       splitter_rules.KIND: _SPLITTER, "service-router": _ROUTER}


def _fold(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def _strict(raw: Any, schema: dict[str, Any], where: str) -> Any:
    """Rename keys to the schema's spelling; unknown keys are an error naming them."""
    if not isinstance(raw, dict):
        return raw  # type errors are reported by the validators, which know what was expected
    if "*" in schema:  # a map of names: keys kept as written, values decoded
        return {key: _strict(value, schema["*"], f"{where}{key}.") for key, value in raw.items()}
    names = {_fold(k): k for k in schema}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = names.get(_fold(str(key)))
        if name is None:
            # Consul CE's validateUnusedKeys names namespaces as what they are.
            why = ", namespaces are a consul enterprise feature" if _fold(str(key)).endswith("namespace") else ""
            raise EntryError(f"Request decoding failed: invalid config key \"{where}{key}\"{why}")
        sub = schema[name]
        if isinstance(sub, list) and isinstance(value, list):
            value = [_strict(v, sub[0], f"{where}{name}[{i}].") for i, v in enumerate(value)]
        elif isinstance(sub, dict) and sub:  # an empty schema ({}: Meta-like) takes any keys
            value = _strict(value, sub, f"{where}{name}.")
        out[name] = value
    return out


def _top_level(raw: dict[str, Any]) -> dict[str, Any]:
    """Kind and Name in Go spelling for kinds we store as given."""
    out = {}
    for key, value in raw.items():
        folded = _fold(str(key))
        out[{"kind": "Kind", "name": "Name", "protocol": "Protocol", "meta": "Meta",
             "config": "Config"}.get(folded, key)] = value
    return out


# --- decoding and validation ------------------------------------------------------------------


def decode(raw: Any) -> dict[str, Any]:
    """A PUT /v1/config body → a normalized entry (read-only fields dropped), or EntryError."""
    if not isinstance(raw, dict):
        raise EntryError("Request decoding failed: a config entry must be a JSON object")
    kind_key = next((k for k in raw if _fold(str(k)) == "kind"), None)
    kind = raw.get(kind_key) if kind_key else None
    if not isinstance(kind, str) or not kind:
        raise EntryError("Request decoding failed: Payload does not contain a kind/Kind key at the top level")
    kind = kind.lower()
    if kind not in KINDS:
        raise EntryError(f"invalid config entry kind: {kind}")
    entry = _strict(raw, _SCHEMAS[kind], "") if kind in _SCHEMAS else _top_level(copy.deepcopy(raw))
    entry["Kind"] = kind
    for key in READ_ONLY:
        entry.pop(key, None)
    name = entry.get("Name")
    if not isinstance(name, str) or not name:
        raise EntryError("Name: config entry name is required")
    if "/" in name:
        raise EntryError(f"Name: {name!r} must not contain '/'")
    if kind == "proxy-defaults" and name != "global":
        raise EntryError(f"Name: invalid name ({name!r}), only \"global\" is supported for proxy-defaults")
    if kind == "mesh" and name != "mesh":
        raise EntryError(f"Name: invalid name ({name!r}), only \"mesh\" is supported for mesh")
    meta = entry.get("Meta")
    if meta is not None and (not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values())):
        raise EntryError("Meta: must be an object of strings")
    if kind == "service-defaults":
        _check_protocol(entry.get("Protocol"), "Protocol")
    if kind == "proxy-defaults":
        config = entry.get("Config")
        if config is not None and not isinstance(config, dict):
            raise EntryError("Config: must be an object")
        _check_protocol((config or {}).get("protocol"), "Config.protocol")
    if kind == ixn.KIND:
        entry = _normalize_intentions(entry)
    if kind == ingress.KIND:
        try:
            entry = ingress.normalize(entry)
        except ingress.IngressError as e:
            raise EntryError(str(e)) from None
    if kind == "service-router":
        try:
            router_rules.validate(entry)
        except router_rules.InvalidRouter as e:
            raise EntryInvalid(str(e)) from None
    if kind in (resolver_rules.KIND, splitter_rules.KIND):
        entry = _normalize_chain_entry(entry)
    return entry


def _normalize_chain_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A service-resolver or service-splitter through Consul's Normalize and Validate."""
    try:
        if entry["Kind"] == resolver_rules.KIND:
            return resolver_rules.normalize(entry, filter_syntax_problem)
        return splitter_rules.normalize(entry)
    except entry_types.Undecodable as e:
        raise EntryError(str(e)) from None
    except (resolver_rules.InvalidResolver, splitter_rules.InvalidSplitter) as e:
        raise EntryInvalid(str(e)) from None


def _check_protocol(value: Any, where: str) -> None:
    if value is None or value == "":
        return
    if not isinstance(value, str) or value.lower() not in PROTOCOLS:
        raise EntryError(f"{where}: must be one of {', '.join(PROTOCOLS)}, not {value!r}")


def _normalize_intentions(entry: dict[str, Any]) -> dict[str, Any]:
    try:
        parsed = ixn.from_config_entry(entry)
    except ixn.IntentionError as e:
        raise EntryError(str(e)) from None
    try:
        intention_rules.validate(entry)
    except intention_rules.InvalidIntentions as e:
        raise EntryInvalid(str(e)) from None
    sources = []
    for raw, intention in zip(entry.get("Sources") or [], parsed, strict=True):
        src = {k: v for k, v in raw.items() if k != "Precedence"}
        src["Type"] = src.get("Type") or "consul"
        if intention.action is not None:
            src["Action"] = intention.action  # Consul stores allow/deny in lower case
        sources.append(src)
    return {**entry, "Sources": sorted(sources, key=lambda s: (-ixn.precedence(s["Name"], entry["Name"]), s["Name"]))}


def protocol_of(service: str, lookup: Lookup) -> str:
    defaults = lookup("service-defaults", service)
    if defaults and defaults.get("Protocol"):
        return str(defaults["Protocol"]).lower()
    proxy = lookup("proxy-defaults", "global")
    if proxy and (proxy.get("Config") or {}).get("protocol"):
        return str(proxy["Config"]["protocol"]).lower()
    return "tcp"


def protocol_conflict(entry: dict[str, Any] | None, lookup: Lookup, all_intentions: list[dict[str, Any]]) -> str | None:
    """Consul's refusal text if writing `entry` (None: a deletion already applied to `lookup`)
    leaves an L7 intention on a non-HTTP service; `all_intentions` are the stored
    service-intentions entries (with `entry` in place when it is one)."""
    for ent in all_intentions:
        dest = ent["Name"]
        if dest == ixn.WILDCARD or not any(s.get("Permissions") for s in ent.get("Sources") or []):
            continue
        proto = protocol_of(dest, lookup)
        if proto not in HTTP_LIKE:
            return f"service {dest!r} has protocol {proto!r}, which is incompatible with L7 intentions permissions" \
                .replace("'", '"')
    return None


# --- output -----------------------------------------------------------------------------------


def to_json(entry: dict[str, Any], create_index: int, modify_index: int) -> dict[str, Any]:
    """A stored entry as Consul returns it: with its indexes, and Precedence on intention sources."""
    out = copy.deepcopy(entry)
    if out.get("Kind") == ixn.KIND:
        for src in out.get("Sources") or []:
            src["Precedence"] = ixn.precedence(src["Name"], out["Name"])
    out["CreateIndex"], out["ModifyIndex"] = create_index, modify_index
    return out
