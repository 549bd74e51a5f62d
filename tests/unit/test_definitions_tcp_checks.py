"""tcp checks: Nomad refuses them on a Connect service whatever port they name (Consul cannot reach
the app inside the allocation's namespace; hashicorp/nomad#6141), so `validate` refuses them with the
reason and the alternative, and the dev agent refuses such a job with Nomad's own error; on a service
outside the mesh they render and validate as before (issue 12 item 4)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nomadmesh.definitions import load_spec
from nomadmesh.definitions.parse import TCP_ON_CONNECT
from nomadmesh.jobspec import canonicalize, parse_hcl, validate
from nomadmesh.render import render_hcl
from support.spec_builders import definition, edit, problems, write_services

A = definition("a", 8080)
PLAIN = edit(A, "service.connect", "_delete")


@pytest.mark.parametrize(("doc", "field"), [
    (edit(A, "nomad.checks", [{"type": "tcp"}]), "nomad.checks[0].type"),
    (edit(edit(A, "nomad.ports", {"metrics": 9102}), "nomad.checks", [{"type": "tcp", "port": "metrics"}]),
     "nomad.checks[0].type"),
    (edit(A, "service.check", {"tcp": "localhost:8080"}), "service.check.tcp"),
    (edit(A, "service.checks", [{"http": "http://localhost:8080/h"}, {"tcp": "localhost:8080"}]),
     "service.checks[1].tcp"),
], ids=["service port", "named port", "consul check", "consul checks"])
def test_a_tcp_check_on_a_connect_service_is_refused_with_the_reason(tmp_path: Path, doc: Any, field: str) -> None:
    assert problems(tmp_path, {"a": doc}) == [("a", field, TCP_ON_CONNECT)]


def test_the_message_says_why_and_what_to_use_instead() -> None:
    assert "network namespace" in TCP_ON_CONNECT and "mTLS" in TCP_ON_CONNECT
    assert "use an http check" in TCP_ON_CONNECT and "exposes it through the sidecar" in TCP_ON_CONNECT


def test_a_worker_with_a_tcp_check_gets_only_the_tcp_reason(tmp_path: Path) -> None:
    worker = edit(edit(definition("w", 1, {"a": 6001}), "service.port", "_delete"), "nomad.checks", [{"type": "tcp"}])
    assert problems(tmp_path, {"w": worker, "a": A}) == [("w", "nomad.checks[0].type", TCP_ON_CONNECT)]


@pytest.mark.parametrize("check", [{"type": "tcp"}, {"type": "tcp", "port": "metrics"}], ids=["own port", "named"])
def test_a_tcp_check_outside_the_mesh_renders_and_validates(tmp_path: Path, check: dict[str, Any]) -> None:
    doc = edit(edit(PLAIN, "nomad.ports", {"metrics": 9102}), "nomad.checks", [check])
    spec = load_spec(write_services(tmp_path, {"a": doc}))
    job = canonicalize(parse_hcl(render_hcl(spec.service("a"), spec.project)))
    assert validate(job) == []
    (service,) = job["TaskGroups"][0]["Services"]
    assert [(c["Type"], c["PortLabel"]) for c in service["Checks"]] == [("tcp", check.get("port", ""))]


CONNECT_TCP = '''job "a" {
  datacenters = ["dc1"]
  group "a" {
    network {
      mode = "bridge"
      port "metrics" { to = 9102 }
    }
    service {
      name = "a"
      port = "8080"
      connect { sidecar_service {} }
      check {
        name     = "alive"
        type     = "tcp"
        port     = "metrics"
        interval = "10s"
        timeout  = "2s"
      }
    }
    task "a" {
      driver = "raw_exec"
      config { command = "true" }
    }
  }
}
'''


def test_the_agent_refuses_a_tcp_check_on_a_connect_service_with_nomads_error() -> None:
    errors = validate(canonicalize(parse_hcl(CONNECT_TCP)))
    assert errors == ['Task group a validation failed: Service "a" check "alive" invalid: '
                      "tcp checks are not valid for Connect enabled services"]
    without_connect = CONNECT_TCP.replace("connect { sidecar_service {} }", "").replace('"8080"', '"metrics"')
    assert validate(canonicalize(parse_hcl(without_connect))) == []
