"""The sidecar the agent injects is in the job GET returns, and registering that job again changes nothing."""
from __future__ import annotations

from typing import Any

import requests

from support.nomad_jobs import rendered_sample_job


def test_get_job_shows_the_injected_sidecar(module_agent: Any) -> None:
    job = rendered_sample_job("order")
    job["ID"] = job["Name"] = "inject-shown"
    job["Datacenters"] = ["nowhere"]  # nothing is placed: this is about the stored job only
    base = module_agent.nomad_addr
    r = requests.post(f"{base}/v1/jobs", json={"Job": job}, timeout=10)
    assert r.status_code == 200, r.text
    try:
        stored = requests.get(f"{base}/v1/job/inject-shown", timeout=10).json()
        tg = stored["TaskGroups"][0]
        assert [t["Name"] for t in tg["Tasks"]] == ["order", "connect-proxy-order"]
        assert "connect-proxy-order" in [p["Label"] for p in tg["Networks"][0]["DynamicPorts"]]
        # Registering what GET returned changes nothing: same version.
        again = requests.post(f"{base}/v1/jobs", json={"Job": stored}, timeout=10)
        assert again.status_code == 200, again.text
        assert requests.get(f"{base}/v1/job/inject-shown", timeout=10).json()["Version"] == stored["Version"]
    finally:
        requests.delete(f"{base}/v1/job/inject-shown?purge=true", timeout=10)
