"""Blocking queries on the Consul API: a watcher with ?index= returns within 1 s of a change on
the KV, catalog, health and config endpoints, and times out at ?wait (plus at most wait/16)."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import consul
import pytest
import requests

from support.agents import RunningAgent


def watch(url: str, index: int, wait: str = "20s") -> dict[str, Any]:
    """Start a blocking GET in a thread; returns a dict filled with response and elapsed time."""
    out: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        out["resp"] = requests.get(url, params={"index": index, "wait": wait}, timeout=60)
        out["elapsed"] = time.monotonic() - started
        out["done_at"] = time.monotonic()

    out["thread"] = threading.Thread(target=run)
    out["thread"].start()
    return out


def current_index(url: str) -> int:
    return int(requests.get(url, timeout=5).headers["X-Consul-Index"])


def changes(c: consul.Consul, module_agent: RunningAgent) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("/v1/kv/blk/key", lambda: c.kv.put("blk/key", "v")),
        ("/v1/catalog/services", lambda: c.agent.service.register("blk-svc", port=1)),
        ("/v1/health/service/blk-h", lambda: c.agent.service.register("blk-h", port=2)),
        ("/v1/config/service-defaults", lambda: c.config.set(
            "service-defaults", "blk", {"Kind": "service-defaults", "Name": "blk", "Protocol": "http"})),
        ("/v1/connect/intentions", lambda: c.connect.intentions.upsert("blk-a", "blk-b", action="allow")),
    ]


@pytest.mark.parametrize("case", range(5))
def test_watcher_returns_on_a_change(module_agent: RunningAgent, case: int) -> None:
    """The query (wait 20 s) returns because of the change: within the 10 s join, before its wait runs out."""
    c = consul.Consul(host="127.0.0.1", port=module_agent.consul_port)
    path, change = changes(c, module_agent)[case]
    url = module_agent.consul_addr + path
    index = current_index(url)
    w = watch(url, index)
    time.sleep(0.5)  # time must pass: the query must NOT return while nothing changes
    assert w["thread"].is_alive(), "the query must block until something changes"
    change()
    w["thread"].join(timeout=10)
    assert not w["thread"].is_alive()
    assert w["resp"].status_code == 200
    assert int(w["resp"].headers["X-Consul-Index"]) > index


def test_watcher_times_out_at_wait(module_agent: RunningAgent) -> None:
    url = f"{module_agent.consul_addr}/v1/kv/blk/quiet"
    index = current_index(url)
    w = watch(url, index, wait="1s")
    w["thread"].join(timeout=10)
    assert 1.0 <= w["elapsed"] < 1.0 + 1.0 / 16 + 0.5
    assert w["resp"].status_code == 404  # still missing, answered when the wait ran out
    assert int(w["resp"].headers["X-Consul-Index"]) >= index


def test_py_consul_blocking_get_returns_the_new_value(module_agent: RunningAgent) -> None:
    c = consul.Consul(host="127.0.0.1", port=module_agent.consul_port)
    c.kv.put("blk/py", "old")
    index, _ = c.kv.get("blk/py")
    threading.Timer(0.3, lambda: c.kv.put("blk/py", "new")).start()
    started = time.monotonic()
    new_index, item = c.kv.get("blk/py", index=index, wait="60s")
    assert time.monotonic() - started < 30  # woken by the write, not by the end of the wait
    assert item["Value"] == b"new" and int(new_index) > int(index)


def test_bad_wait_is_400(module_agent: RunningAgent) -> None:
    r = requests.get(f"{module_agent.consul_addr}/v1/catalog/services", params={"index": 1, "wait": "soon"},
                     timeout=5)
    assert r.status_code == 400 and "Invalid wait" in r.text
