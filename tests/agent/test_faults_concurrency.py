"""Fault 3 (issue 7): 50 concurrent writers of KV and intentions, check-and-set, from several
processes against a real agent: nothing is lost, the final state is the sum of the writes.

5 writer processes × 10 threads each, all released at the same instant. Every writer
  - increments one shared KV counter K times with ?cas= (read ModifyIndex, write, retry on false),
  - writes a KV key of its own,
  - adds its own source to one shared service-intentions entry with PUT /v1/config?cas=.
"""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
import requests

pytestmark = [pytest.mark.timeout(90), pytest.mark.alone]  # 5 processes × 10 threads at once

PROCESSES, THREADS, INCREMENTS = 5, 10, 5

WRITER = textwrap.dedent('''
    import base64, json, sys, threading, time
    import requests

    addr, first, threads, increments = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    start_at = float(sys.argv[5])
    deadline = start_at + 60
    retries = [0]
    failures = []

    def kv_increment(s):
        while time.time() < deadline:
            r = s.get(f"{addr}/v1/kv/faults/counter", timeout=10)
            if r.status_code == 404:
                index, value = 0, 0
            else:
                r.raise_for_status()
                (e,) = r.json()
                index, value = e["ModifyIndex"], int(base64.b64decode(e["Value"]))
            w = s.put(f"{addr}/v1/kv/faults/counter", params={"cas": index}, data=str(value + 1), timeout=10)
            w.raise_for_status()
            if w.json() is True:
                return
            retries[0] += 1
        raise TimeoutError("kv cas")

    def add_source(s, me):
        while time.time() < deadline:
            r = s.get(f"{addr}/v1/config/service-intentions/faults-dest", timeout=10)
            if r.status_code == 404:
                index, entry = 0, {"Kind": "service-intentions", "Name": "faults-dest", "Sources": []}
            else:
                r.raise_for_status()
                entry = r.json()
                index = entry["ModifyIndex"]
            entry = {k: v for k, v in entry.items() if k in ("Kind", "Name", "Sources", "Meta")}
            entry["Sources"] = list(entry.get("Sources") or []) + [{"Name": me, "Action": "allow"}]
            w = s.put(f"{addr}/v1/config", params={"cas": index}, json=entry, timeout=10)
            w.raise_for_status()
            if w.json() is True:
                return
            retries[0] += 1
        raise TimeoutError("config cas")

    def writer(i):
        try:
            s = requests.Session()
            while time.time() < start_at:  # a barrier across five processes: every writer starts at once
                time.sleep(0.001)
            for _ in range(increments):
                kv_increment(s)
            s.put(f"{addr}/v1/kv/faults/writers/w{i:02d}", data=str(i), timeout=10).raise_for_status()
            add_source(s, f"src-{i:02d}")
        except Exception as e:
            failures.append(f"writer {i}: {type(e).__name__}: {e}")

    ts = [threading.Thread(target=writer, args=(first + t,)) for t in range(threads)]
    for t in ts: t.start()
    for t in ts: t.join()
    print(json.dumps({"retries": retries[0], "failures": failures}))
''')


def test_fifty_concurrent_cas_writers_lose_nothing(running_agent: Any) -> None:
    addr = running_agent.consul_addr
    start_at = time.time() + 3  # time for every interpreter to start and import requests
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, addr, str(p * THREADS), str(THREADS), str(INCREMENTS),
                               str(start_at)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p in range(PROCESSES)]
    try:
        outs = [p.communicate(timeout=75) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    reports = []
    for (out, err), p in zip(outs, procs, strict=True):
        assert p.returncode == 0, err
        reports.append(json.loads(out))
    assert [f for r in reports for f in r["failures"]] == []
    writers = PROCESSES * THREADS

    (counter,) = requests.get(f"{addr}/v1/kv/faults/counter", timeout=5).json()
    assert int(base64.b64decode(counter["Value"])) == writers * INCREMENTS
    keys = requests.get(f"{addr}/v1/kv/faults/writers/", params={"keys": ""}, timeout=5).json()
    assert sorted(keys) == [f"faults/writers/w{i:02d}" for i in range(writers)]

    entry = requests.get(f"{addr}/v1/config/service-intentions/faults-dest", timeout=5).json()
    assert sorted(s["Name"] for s in entry["Sources"]) == [f"src-{i:02d}" for i in range(writers)]
    # The same through the intentions API (what Envoy's RBAC is built from).
    listed = requests.get(f"{addr}/v1/connect/intentions", timeout=5).json()
    assert sorted(i["SourceName"] for i in listed if i["DestinationName"] == "faults-dest") == \
        [f"src-{i:02d}" for i in range(writers)]
    # There was real contention (else this proved nothing about CAS).
    assert sum(r["retries"] for r in reports) > 0
