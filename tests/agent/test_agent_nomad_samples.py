"""The seed's three services (services/app.py: order -> invoice -> tax) as Nomad jobs submitted as
Job JSON in host mode, answering through their host ports; without Connect sidecars each reaches its
upstream on 127.0.0.1 through the seed's INV_SVC_URL / TAX_SVC_URL. (Bridge mode:
tests/e2e/test_agent_nomad_samples_bridge.py.)"""
from __future__ import annotations

import requests

from support.agents import InProcessAgent
from support.sample_apps import answer, assert_catalog, deploy_all, expected_chain
from support.waiting import wait_until


def test_samples_in_host_mode(agent: InProcessAgent) -> None:
    ports = deploy_all(agent, "host", "127.0.0.1")
    assert answer(ports["order"]) == expected_chain()
    assert answer(ports["tax"]) == [{"Service": "Tax", "Version": 1.0}]
    assert_catalog(agent, ports)
    agent.client.job.deregister_job("tax", purge=False)
    wait_until(lambda: agent.catalog.health("tax") == [], 15)  # deregistered when it stops
    # Services leave the catalog before the task is killed (as in Nomad), so tax may still answer a moment.
    def refused() -> tuple[requests.Response] | None:  # a tuple: a 502 Response is itself falsy
        r = requests.get(f"http://127.0.0.1:{ports['order']}/", timeout=10)
        return (r,) if r.status_code != 200 else None

    (broken,) = wait_until(refused, 15)
    assert broken.status_code == 502 and "invoice" in broken.text  # tax really stopped
