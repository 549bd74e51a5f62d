"""/v1/health/service reads a service and its checks from one view of the state: a service being
registered or deregistered beside its critical check is never seen without the check, which would
make it look passing (found in CI: a job's service showed up passing with no checks)."""
from __future__ import annotations

import threading

from support.agents import InProcessAgent

SERVICE = {"Name": "flicker", "ID": "flicker-1", "Port": 9999,
           "Check": {"CheckID": "flicker-ttl", "Name": "ttl", "TTL": "30s"}}  # a TTL check starts critical


def test_a_service_is_never_passing_without_its_critical_check(agent: InProcessAgent) -> None:
    catalog = agent.catalog
    done = threading.Event()
    seen: list[object] = []

    def churn() -> None:
        try:
            for _ in range(400):
                catalog.register_service(dict(SERVICE))
                catalog.deregister_service("flicker-1")
        finally:
            done.set()

    writer = threading.Thread(target=churn)
    writer.start()
    reads = 0
    while not done.is_set() or reads == 0:
        seen += catalog.health("flicker", passing_only=True)
        reads += 1
    writer.join()
    assert seen == [], f"{len(seen)} of {reads} reads saw the service passing without its check"
