"""deploy/verify.py's pure half: which edges the jobs declare, and each edge's verdict."""
from __future__ import annotations

from nomadmesh.deploy.verify import check_edge, edges_from_jobs
from nomadmesh.mesh.intentions import HTTPMatch, Intention, Permission


def job(name: str, *upstreams: str) -> dict:
    proxy = {"Upstreams": [{"DestinationName": u, "LocalBindPort": 6000 + i} for i, u in enumerate(upstreams)]}
    return {"ID": name, "TaskGroups": [{"Name": name, "Services": [
        {"Name": name, "Connect": {"SidecarService": {"Proxy": proxy}}}, {"Name": f"{name}-metrics"}]}]}


def test_edges_from_jobs_sorted_and_deduplicated() -> None:
    assert edges_from_jobs([job("order", "invoice"), job("invoice", "tax", "tax"), job("tax"),
                            {"ID": "plain", "TaskGroups": [{"Services": None}]}]) == [
        ("invoice", "tax"), ("order", "invoice")]


def test_allowed_and_healthy() -> None:
    e = check_edge("invoice", "tax", [Intention("invoice", "tax", "allow")], False, 2)
    assert e.ok and e.verdict == "allow"
    assert e.message == "allowed by invoice => tax (allow); tax has 2 healthy Connect instances"


def test_denied_by_the_default_policy_names_it() -> None:
    e = check_edge("invoice", "tax", [Intention("order", "invoice", "allow")], False, 1)
    assert not e.ok and e.verdict == "deny" and e.rule == "default policy (deny)"
    assert e.message.startswith("denied by default policy (deny)")


def test_exact_deny_beats_wildcard_allow() -> None:
    e = check_edge("invoice", "tax", [Intention("*", "tax", "allow"), Intention("invoice", "tax", "deny")], True, 1)
    assert not e.ok and e.rule == "invoice => tax (deny)"


def test_allowed_but_no_healthy_instance_fails() -> None:
    e = check_edge("invoice", "tax", [], True, 0)
    assert not e.ok and "tax has no healthy Connect instance (/v1/health/connect/tax?passing)" in e.message


def test_l7_counts_when_some_requests_get_through() -> None:
    some = Intention("web", "api", None, (Permission("allow", HTTPMatch(path_prefix="/public")),))
    e = check_edge("web", "api", [some], False, 1)
    assert e.ok and e.verdict == "per-request"
    assert e.message.startswith("allowed for some requests: the L7 permissions of web => api decide per request")
    none = Intention("web", "api", None, (Permission("deny", HTTPMatch(path_prefix="/admin")),))
    assert not check_edge("web", "api", [none], False, 1).ok  # nothing allows, unmatched get the default deny
    assert check_edge("web", "api", [none], True, 1).ok  # unmatched requests get the default allow
