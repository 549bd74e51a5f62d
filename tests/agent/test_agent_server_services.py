"""The agent's parts working together in one process: a job submitted to the Nomad API runs the
sample tax service, its service lands in the Consul catalog with the http and tcp checks the
agent runs, they pass, and stopping the job deregisters it (Nomad's Consul integration)."""
from __future__ import annotations

import sys
from typing import Any

import consul
import nomad
import requests

from support.agents import RunningAgent
from support.paths import REPO
from support.waiting import wait_until

TAX_JOB = """
job "tax" {
  group "tax" {
    network {
      port "http" {}
    }
    service {
      name = "tax"
      port = "http"
      tags = ["seed"]
      check {
        name     = "tax http"
        type     = "http"
        path     = "/health"
        interval = "1s"
        timeout  = "1s"
      }
      check {
        name     = "tax tcp"
        type     = "tcp"
        interval = "1s"
        timeout  = "1s"
      }
    }
    task "tax" {
      driver = "raw_exec"
      config {
        command = "%(python)s"
        args    = ["%(app)s", "tax"]
      }
      env {
        PORT = "${NOMAD_PORT_http}"
      }
      kill_timeout = "2s"
    }
  }
}
"""


def test_job_service_is_registered_checked_and_deregistered(running_agent: RunningAgent) -> None:
    n = nomad.Nomad(host="127.0.0.1", port=running_agent.nomad_port, timeout=10)
    c = consul.Consul(host="127.0.0.1", port=running_agent.consul_port)
    hcl = TAX_JOB % {"python": sys.executable, "app": REPO / "services" / "app.py"}
    job = n.jobs.parse(hcl, canonicalize=True)
    n.jobs.register_job({"Job": job})

    def passing() -> list[dict[str, Any]]:
        return c.health.service("tax", passing=True)[1]

    rows = wait_until(passing)
    assert len(rows) == 1
    svc = rows[0]["Service"]
    assert svc["ID"].startswith("_nomad-task-") and svc["Tags"] == ["seed"]
    assert [ch["Type"] for ch in rows[0]["Checks"][1:]] == ["http", "tcp"]
    assert all(ch["Status"] == "passing" for ch in rows[0]["Checks"])
    body = requests.get(f"http://{svc['Address']}:{svc['Port']}/", timeout=5).json()
    assert body == {"Service": "Tax", "Version": 1.0}

    n.job.deregister_job("tax")
    wait_until(lambda: c.catalog.service("tax")[1] == [])
    assert not any(ch["ServiceName"] == "tax" for ch in c.agent.checks().values())
