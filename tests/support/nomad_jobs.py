"""Jobs and calls the Nomad-side tests share."""
from __future__ import annotations

import requests

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
