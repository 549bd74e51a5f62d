"""Jobs and calls the Nomad-side tests share."""
from __future__ import annotations

import json
from typing import Any

import requests

from nomadmesh.definitions import load_spec
from nomadmesh.render import render
from support.paths import SERVICES
from support.waiting import wait_until

DOCKER_HCL = """
job "cache" {
  group "cache" {
    count = 2
    task "redis" {
      driver = "docker"
      config { image = "redis:7" }
    }
  }
}
"""


def get_text(url: str, timeout: float = 10.0) -> str:
    """GET once the task's server listens (running means started, not yet listening)."""
    def attempt() -> str | None:
        try:
            return requests.get(url, timeout=2).text
        except requests.ConnectionError:
            return None
    return wait_until(attempt, timeout)


def rendered_sample_job(name: str) -> dict[str, Any]:
    """The seed's sample service `name` rendered by nomadmesh, as the Job JSON Nomad's API takes."""
    job: dict[str, Any] = json.loads(render(load_spec(SERVICES), "json")[f"{name}.nomad.json"])["Job"]
    return job
