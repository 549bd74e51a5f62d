"""Consul's validation of a `service-resolver` config entry, with Consul's error texts. Pure.

`normalize(entry, filter_problem)` checks an entry whose keys already have Consul's Go spelling
(`Subsets`, `DefaultSubset`, `Failover`...) as `ServiceResolverConfigEntry.Validate` does in
agent/structs, and returns it as Consul stores it (durations written back as Go strings: "5s").
Type errors raise `Undecodable` (Consul's 400); broken rules raise `InvalidResolver` (Consul's
500), Consul CE's ValidateEnterprise texts included (a redirect or failover to another namespace,
partition or sameness group, a failover policy, prioritize-by-locality: "... requires Consul
Enterprise"). Consul walks Go maps in random order; we walk subsets by name, so of two broken subsets the
one reported is stable.

`filter_problem` parses a subset's Filter (a go-bexpr expression) and returns the parser's error;
it is passed in because the parser lives with the agent's catalog filtering. Like Consul's
Validate (bexpr.CreateEvaluator with no data type) it checks the grammar, not the field names.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from nomadmesh.durations import go_duration
from nomadmesh.mesh import entry_types as t
from nomadmesh.mesh.intention_rules import go_quote

KIND = "service-resolver"
WILDCARD_SUBSET = "*"
# Consul's validServiceSubset: subset names end up in SNI names, so they are DNS labels.
_SUBSET_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_LB_POLICIES = ("", "random", "round_robin", "least_request", "ring_hash", "maglev")
_HASH_FIELDS = ("header", "cookie", "query_parameter")

FilterCheck = Callable[[str], "str | None"]


class InvalidResolver(ValueError):
    """The entry breaks one of Consul's Validate rules; the message is Consul's text."""


def subset_name_problem(name: str) -> str | None:
    """Consul's validateServiceSubset text for a bad subset name, None when fine."""
    if not name or len(name) > 63:
        return "must be non-empty and 63 characters or fewer"
    if not _SUBSET_NAME.match(name):
        return ("must be 63 characters or fewer, begin or end with lower case alphanumeric characters, and "
                "contain lower case alphanumeric characters or '-' in between")
    return None


def subsets_of(entry: dict[str, Any] | None) -> set[str]:
    """The subset names a (stored, valid) resolver defines."""
    return set((entry or {}).get("Subsets") or {})


def normalize(entry: dict[str, Any], filter_problem: FilterCheck | None = None) -> dict[str, Any]:
    """`entry` checked with Consul's rules and returned as Consul stores it."""
    out = dict(entry)
    subsets = t.mapping(entry, "Subsets", "")
    stored: dict[str, dict[str, Any]] = {}
    for name in sorted(subsets):
        subset = t.obj(subsets[name], f"Subsets[{name}]")
        where = f"Subsets[{name}]."
        text = t.string(subset, "Filter", where)
        only_passing = t.boolean(subset, "OnlyPassing", where)
        stored[name] = {**({"Filter": text} if text else {}), **({"OnlyPassing": True} if only_passing else {})}
        if name == "":
            raise InvalidResolver("Subset defined with empty name")
        problem = subset_name_problem(name)
        if problem:
            raise InvalidResolver(f"Subset {go_quote(name)} is invalid: {problem}")
        if text and filter_problem is not None:
            problem = filter_problem(text)
            if problem:
                raise InvalidResolver(f"Filter for subset {go_quote(name)} is not a valid expression: {problem}")
    names = set(subsets)
    if "Subsets" in out:
        out["Subsets"] = stored  # as Consul returns them: empty fields left out, OnlyPassing a bool
    default = t.string(entry, "DefaultSubset", "")
    if default and default not in names:
        raise InvalidResolver(f"DefaultSubset {go_quote(default)} is not a valid subset")
    failover = t.mapping(entry, "Failover", "")
    if "Redirect" in entry and entry["Redirect"] is not None:
        _check_redirect(t.obj(entry["Redirect"], "Redirect"), entry["Name"], names, bool(failover))
    for key in sorted(failover):
        _check_failover(key, t.obj(failover[key], f"Failover[{key}]"), entry["Name"], names)
    for key in ("ConnectTimeout", "RequestTimeout"):
        ns = t.duration(entry, key)
        if ns < 0:
            raise InvalidResolver(f"Bad {key} '{go_duration(ns)}', must be >= 0")
        written = t.duration_text(ns)
        if written is None:
            out.pop(key, None)
        else:
            out[key] = written
    if entry.get("LoadBalancer") is not None:
        _check_load_balancer(t.obj(entry["LoadBalancer"], "LoadBalancer"))
    locality = t.obj(entry.get("PrioritizeByLocality"), "PrioritizeByLocality")
    if t.string(locality, "Mode", "PrioritizeByLocality."):
        raise InvalidResolver("Prioritize-by-locality requires Consul Enterprise ")  # sic: Consul's trailing space
    return out


def enterprise_problem(fields: dict[str, str], keys: tuple[str, ...]) -> str | None:
    """Consul CE's ValidateEnterprise: the first of `keys` set in `fields`, in Consul's words."""
    for key in keys:
        if fields.get(key):
            return f"Setting {key} requires Consul Enterprise"
    return None


def _check_redirect(r: dict[str, Any], name: str, subsets: set[str], has_failover: bool) -> None:
    fields = {k: t.string(r, k, "Redirect.") for k in
              ("Service", "ServiceSubset", "Namespace", "Partition", "Datacenter", "Peer", "SamenessGroup")}
    problem = enterprise_problem(fields, ("Partition", "Namespace", "SamenessGroup"))
    if problem:
        raise InvalidResolver(f"Redirect: {problem}")
    if has_failover:
        raise InvalidResolver("Redirect and Failover cannot both be set")
    if not any(fields.values()):
        raise InvalidResolver("Redirect is empty")
    service, subset, peer = fields["Service"], fields["ServiceSubset"], fields["Peer"]
    if peer and subset:
        raise InvalidResolver("Redirect.Peer cannot be set with Redirect.ServiceSubset")
    if peer and fields["Partition"]:
        raise InvalidResolver("Redirect.Partition cannot be set with Redirect.Peer")
    if peer and fields["Datacenter"]:
        raise InvalidResolver("Redirect.Peer cannot be set with Redirect.Datacenter")
    if not service:
        for key in ("ServiceSubset", "Namespace", "Partition", "Peer"):
            if fields[key]:
                raise InvalidResolver(f"Redirect.{key} defined without Redirect.Service")
    elif subset and service == name and subset not in subsets:
        raise InvalidResolver(f"Redirect.ServiceSubset {go_quote(subset)} is not a valid subset of {go_quote(name)}")


def _check_failover(subset: str, f: dict[str, Any], name: str, subsets: set[str]) -> None:
    prefix = f"Bad Failover[{go_quote(subset)}]: "
    where = f"Failover[{subset}]."
    service, service_subset = t.string(f, "Service", where), t.string(f, "ServiceSubset", where)
    namespace = t.string(f, "Namespace", where)
    datacenters = t.items(f, "Datacenters", where)
    targets = t.items(f, "Targets", where)
    problem = enterprise_problem({"Namespace": namespace, "SamenessGroup": t.string(f, "SamenessGroup", where)},
                                 ("Namespace", "SamenessGroup"))
    mode = t.string(t.obj(f.get("Policy"), f"{where}Policy"), "Mode", f"{where}Policy.")
    if problem is None and mode:
        problem = "Setting failover policies requires Consul Enterprise"
    if problem:
        raise InvalidResolver(prefix + problem)
    if subset != WILDCARD_SUBSET and subset not in subsets:
        raise InvalidResolver(prefix + "not a valid subset subset")  # sic: Consul's text
    if not (service or service_subset or namespace or datacenters or targets):
        raise InvalidResolver(prefix + "one of Service, ServiceSubset, Namespace, Targets, or Datacenters is required")
    if service_subset and (not service or service == name) and service_subset not in subsets:
        raise InvalidResolver(f"{prefix}ServiceSubset {go_quote(service_subset)} is not a valid subset of "
                              f"{go_quote(service)}")
    if datacenters and targets:
        raise InvalidResolver(prefix + "Targets cannot be set with Datacenters")
    if service_subset and targets:
        raise InvalidResolver(prefix + "Targets cannot be set with ServiceSubset")
    if service and targets:
        raise InvalidResolver(prefix + "Targets cannot be set with Service")
    for i, raw in enumerate(targets):
        target = t.obj(raw, f"{where}Targets[{i}]")
        fields = {k: t.string(target, k, f"{where}Targets[{i}].") for k in
                  ("Service", "ServiceSubset", "Partition", "Namespace", "Datacenter", "Peer")}
        at = f"Bad Failover[{go_quote(subset)}].Targets[{i}]: "
        problem = enterprise_problem(fields, ("Partition", "Namespace"))
        if problem:
            raise InvalidResolver(at + problem)
        if fields["Peer"] and fields["ServiceSubset"]:
            raise InvalidResolver(at + "Peer cannot be set with ServiceSubset")
        if fields["Peer"] and fields["Partition"]:
            raise InvalidResolver(at + "Partition cannot be set with Peer")
        if fields["Peer"] and fields["Datacenter"]:
            raise InvalidResolver(at + "Peer cannot be set with Datacenter")
        if fields["Partition"] and fields["Datacenter"]:
            raise InvalidResolver(at + "Partition cannot be set with Datacenter")
        if (fields["ServiceSubset"] and fields["Service"] in ("", name)
                and fields["ServiceSubset"] not in subsets):
            raise InvalidResolver(f"{at}ServiceSubset {go_quote(fields['ServiceSubset'])} is not a valid subset of "
                                  f"{go_quote(name)}")
    if any(dc in ("", None) for dc in datacenters):
        raise InvalidResolver(f"Bad Failover[{go_quote(subset)}].Datacenters: found empty datacenter")


def _check_load_balancer(lb: dict[str, Any]) -> None:
    policy = t.string(lb, "Policy", "LoadBalancer.")
    if policy not in _LB_POLICIES:
        raise InvalidResolver(f"Bad LoadBalancer policy: {go_quote(policy)} is not supported")
    if policy != "ring_hash" and lb.get("RingHashConfig") is not None:
        raise InvalidResolver("Bad LoadBalancer configuration. RingHashConfig specified for incompatible load "
                              f"balancing policy {go_quote(policy)}")
    if policy != "least_request" and lb.get("LeastRequestConfig") is not None:
        raise InvalidResolver("Bad LoadBalancer configuration. LeastRequestConfig specified for incompatible load "
                              f"balancing policy {go_quote(policy)}")
    policies = t.items(lb, "HashPolicies", "LoadBalancer.")
    if policies and policy not in ("ring_hash", "maglev"):
        raise InvalidResolver(f"Bad LoadBalancer configuration: HashPolicies specified for non-hash-based Policy: "
                              f"{go_quote(policy)}")
    for i, raw in enumerate(policies):
        hp = t.obj(raw, f"LoadBalancer.HashPolicies[{i}]")
        field = t.string(hp, "Field", f"LoadBalancer.HashPolicies[{i}].")
        value = t.string(hp, "FieldValue", f"LoadBalancer.HashPolicies[{i}].")
        source_ip = t.boolean(hp, "SourceIP", f"LoadBalancer.HashPolicies[{i}].")
        at = f"Bad LoadBalancer HashPolicy[{i}]: "
        if field and field not in _HASH_FIELDS:
            raise InvalidResolver(f"{at}{go_quote(field)} is not a supported field")
        if source_ip and field:
            raise InvalidResolver(f"{at}A single hash policy cannot hash both a source address and a {go_quote(field)}")
        if source_ip and value:
            raise InvalidResolver(f"{at}A FieldValue cannot be specified when hashing SourceIP")
        if field and not value:
            raise InvalidResolver(f"{at}Field {go_quote(field)} was specified without a FieldValue")
        if value and not field:
            raise InvalidResolver(f"{at}FieldValue requires a Field to apply to")
