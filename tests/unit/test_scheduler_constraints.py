"""Constraints on the one local node (nomad/feasibility.py), as Nomad's ConstraintChecker evaluates them."""
from __future__ import annotations

import pytest

from nomadmesh.agent.nomad.feasibility import constraint_holds, constraint_reason, unevaluated_constraint
from nomadmesh.agent.nomad.node import node_document

NODE = node_document("node-1", "n1", "dc1", "127.0.0.1:4646", None, 1)
NODE["Attributes"].update({"cpu.numcores": "8", "kernel.version": "6.1.0", "unique.storage.volume": "/dev/sda1"})
NODE["Meta"]["rack"] = "r1"
NODE["Meta"]["zones"] = "a, b,c"


def c(left: str, op: str, right: str = "") -> dict[str, str]:
    return {"LTarget": left, "Operand": op, "RTarget": right}


@pytest.mark.parametrize("constraint, holds", [
    (c("${attr.kernel.name}", "=", "linux"), True),
    (c("${attr.kernel.name}", "=", "windows"), False),
    (c("${attr.kernel.name}", "!=", "windows"), True),
    (c("${attr.nope}", "=", ""), False),  # a missing attribute never equals
    (c("${attr.nope}", "!=", "x"), True),  # ...and differs from anything but ""
    (c("${node.datacenter}", "==", "dc1"), True),
    (c("${node.unique.name}", "is", "n1"), True),
    (c("${node.class}", "=", ""), True),
    (c("${node.pool}", "=", "default"), True),
    (c("${meta.rack}", "=", "r1"), True),
    (c("${attr.cpu.numcores}", ">=", "4"), True),
    (c("${attr.cpu.numcores}", "<", "10"), True),  # integers, not text ("8" > "10" lexically)
    (c("${attr.kernel.version}", ">", "5"), True),  # not numbers: lexical
    (c("${attr.kernel.version}", "regexp", "^6\\."), True),
    (c("${attr.kernel.version}", "regexp", "^5\\."), False),
    (c("${attr.kernel.version}", "regexp", "("), False),
    (c("${meta.zones}", "set_contains", "a,c"), True),
    (c("${meta.zones}", "set_contains_all", "a,d"), False),
    (c("${meta.zones}", "set_contains_any", "d,b"), True),
    (c("${attr.unique.storage.volume}", "is_set"), True),
    (c("${attr.gpu}", "is_set"), False),
    (c("${attr.gpu}", "is_not_set"), True),
    (c("", "distinct_hosts", "true"), True),
    (c("${attr.kernel.name}", "bogus", "linux"), False),
])
def test_constraints_follow_nomads_checker(constraint, holds):
    assert constraint_holds(constraint, NODE) is holds


def test_the_first_failing_constraint_is_the_reason_job_first():
    group = {"Name": "g", "Constraints": [c("${meta.rack}", "=", "r2")],
             "Tasks": [{"Name": "t", "Driver": "raw_exec", "Constraints": [c("${attr.gpu}", "is_set")]}]}
    assert constraint_reason(group, NODE) == "${meta.rack} = r2"
    job = {"Constraints": [c("${attr.kernel.name}", "=", "darwin")]}
    assert constraint_reason(group, NODE, job) == "${attr.kernel.name} = darwin"
    group["Constraints"] = []
    assert constraint_reason(group, NODE) == "${attr.gpu} is_set "
    group["Tasks"][0]["Constraints"] = []
    assert constraint_reason(group, NODE) is None


def test_version_constraints_are_refused_not_ignored():
    job = {"TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Constraints": [
        c("${attr.nomad.version}", "version", ">= 1.5")]}]}]}
    assert unevaluated_constraint(job) == (
        'constraint "${attr.nomad.version} version >= 1.5": operator "version" not supported by the dev agent '
        "(it evaluates =, !=, <, <=, >, >=, regexp, set_contains*, is_set, is_not_set)")
    assert unevaluated_constraint({"TaskGroups": []}) is None
