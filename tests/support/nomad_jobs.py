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


def sleep_task(seconds: int = 300, extra: str = "", name: str = "t") -> str:
    """A raw_exec task that sleeps: the smallest task the dev agent really runs. `extra` goes inside
    the task block (env, kill_timeout...)."""
    return f"""    task "{name}" {{
      driver = "raw_exec"
      config {{
        command = "sleep"
        args    = ["{seconds}"]
      }}
{extra}    }}
"""


# A long sleep whose version shows in its env (V, filled by the job text's %-formatting): the task
# the deployment tests update from one version to the next.
VERSIONED_TASK = sleep_task(3600, '      env { V = "%(v)s" }\n      kill_timeout = "1s"\n')


def sleeper_job(job: str, job_lines: str = "", group: str = "g", task: str = "t") -> str:
    """HCL of a job with one group running `sleep_task`; `job_lines` go in the job block before the group."""
    return f"""
job "{job}" {{
{job_lines}  group "{group}" {{
{sleep_task(name=task)}  }}
}}
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
