"""GET /v1/event/stream as Nomad serves it: ndjson batches per index, topics and keys, `index=`
replay from the buffer, namespaces, and Nomad's refusals. Driven over real HTTP on an in-process
agent with python-nomad's own event stream client and with plain streaming requests."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from support.agents import InProcessAgent
from support.nomad_jobs import sleeper_job

SLEEP_HCL = sleeper_job("sleeper")


IDLE_HCL = SLEEP_HCL.replace('group "g" {', 'group "g" {\n    count = 0')  # registers, places nothing


def register(agent: InProcessAgent, hcl: str) -> dict[str, Any]:
    job = agent.client.jobs.parse(hcl, canonicalize=True)
    out: dict[str, Any] = agent.client.jobs.register_job({"Job": job})
    return out


def lines(agent: InProcessAgent, **params: Any) -> Iterator[dict[str, Any]]:
    """The stream's decoded lines (heartbeats included) until the caller stops reading."""
    with requests.get(f"{agent.addr}/v1/event/stream", params=params, stream=True, timeout=30) as r:
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("application/json")
        for raw in r.iter_lines():
            yield json.loads(raw)


def collect(agent: InProcessAgent, until: Any, **params: Any) -> list[dict[str, Any]]:
    """Every event the stream sends until `until(events)` holds (the stream is then closed)."""
    events: list[dict[str, Any]] = []
    for line in lines(agent, **params):
        if line:
            assert set(line) == {"Index", "Events"}
            assert all(e["Index"] == line["Index"] for e in line["Events"])
            events.extend(line["Events"])
        if until(events):
            return events
    raise AssertionError("stream ended")


def test_job_register_and_deregister_are_job_and_evaluation_events(agent: InProcessAgent) -> None:
    out = register(agent, IDLE_HCL)
    agent.client.job.deregister_job("sleeper")
    events = collect(agent, lambda ev: any(e["Type"] == "JobDeregistered" and e["Topic"] == "Job" for e in ev),
                     topic=["Job", "Evaluation"])
    registered = [e for e in events if e["Type"] == "JobRegistered"]
    assert {e["Topic"] for e in registered} == {"Job", "Evaluation"}
    job_event = next(e for e in registered if e["Topic"] == "Job")
    assert job_event["Key"] == "sleeper" and job_event["Namespace"] == "default"
    assert job_event["Payload"]["Job"]["ID"] == "sleeper"
    assert job_event["Index"] == out["JobModifyIndex"]
    ev = next(e for e in registered if e["Topic"] == "Evaluation")
    assert ev["Key"] == out["EvalID"] and ev["FilterKeys"][0] == "sleeper"
    assert ev["Payload"]["Evaluation"]["TriggeredBy"] == "job-register"
    stopped = next(e for e in events if e["Type"] == "JobDeregistered" and e["Topic"] == "Job")
    assert stopped["Payload"]["Job"]["Stop"] is True
    # Only the topics asked for.
    assert {e["Topic"] for e in events} <= {"Job", "Evaluation"}


def test_allocation_events_filter_by_key_and_job_and_come_from_a_plan(agent: InProcessAgent) -> None:
    register(agent, SLEEP_HCL)
    events = collect(agent, lambda ev: any(e["Payload"]["Allocation"]["ClientStatus"] == "running" for e in ev),
                     topic="Allocation:sleeper")  # a job ID is one of an allocation's filter keys
    first = events[0]
    assert first["Type"] == "PlanResult" and first["Topic"] == "Allocation"
    alloc = first["Payload"]["Allocation"]
    assert alloc["JobID"] == "sleeper" and "Job" not in alloc and first["Key"] == alloc["ID"]
    running = next(e for e in events if e["Payload"]["Allocation"]["ClientStatus"] == "running")
    assert running["Type"] == "AllocationUpdated"
    # By the allocation's own ID: only that allocation's events.
    only = collect(agent, lambda ev: len(ev) >= 2, topic=f"Allocation:{alloc['ID']}")
    assert {e["Key"] for e in only} == {alloc["ID"]}
    # Another job's key selects nothing of it: the stream sends heartbeats only (none are events).
    assert collect(agent, lambda ev: True, topic="Allocation:other") == []


def test_index_starts_the_stream_at_that_batch_from_the_buffer(agent: InProcessAgent) -> None:
    register(agent, IDLE_HCL)
    second = register(agent, IDLE_HCL.replace("count = 0", 'count = 0\n    meta { v = "2" }'))
    events = collect(agent, lambda ev: bool(ev), topic="Job", index=second["JobModifyIndex"])
    assert events[0]["Index"] == second["JobModifyIndex"] and events[0]["Payload"]["Job"]["Version"] == 1
    # index=0 (the default) replays the whole buffer: the node's registration is in it.
    everything = collect(agent, lambda ev: any(e["Topic"] == "Job" for e in ev))
    node = next(e for e in everything if e["Topic"] == "Node")
    assert node["Type"] == "NodeRegistration" and node["Namespace"] == "" and node["Payload"]["Node"]["ID"]


def test_namespace_filters_namespaced_topics_only(agent: InProcessAgent) -> None:
    register(agent, IDLE_HCL)
    events = collect(agent, lambda ev: any(e["Topic"] == "Node" for e in ev), namespace="shop")
    assert {e["Topic"] for e in events} == {"Node"}  # the job is in "default"; nodes have no namespace
    assert any(e["Topic"] == "Job" for e in collect(agent, lambda ev: any(e["Topic"] == "Job" for e in ev),
                                                     namespace="*"))


def test_python_nomads_stream_client_receives_events(agent: InProcessAgent) -> None:
    stream, stop, events = agent.client.event.stream.get_stream(topic={"Job": "*"}, timeout=30)
    stream.start()
    try:
        register(agent, IDLE_HCL)
        msg = events.get(timeout=10)
        assert msg["Events"][0]["Topic"] == "Job" and msg["Events"][0]["Type"] == "JobRegistered"
    finally:
        stop.set()
        # The client's thread leaves at its next line: a heartbeat or the next event.
        register(agent, IDLE_HCL.replace("count = 0", 'count = 0\n    meta { v = "x" }'))
        stream.join(timeout=15)
    assert not stream.is_alive()


@pytest.mark.parametrize(("params", "status", "text"), [
    ({"index": "x"}, 400, 'Unable to parse index: strconv.Atoi: parsing "x": invalid syntax'),
    ({"topic": "Job:a:b"}, 400,
     "Invalid topic query: error parsing topics: Invalid key value pair for topic, topic: Job:a:b"),
])
def test_refusals_carry_nomads_status_and_text(agent: InProcessAgent, params: dict[str, str], status: int,
                                                text: str) -> None:
    r = requests.get(f"{agent.addr}/v1/event/stream", params=params, timeout=10)
    assert (r.status_code, r.text.strip()) == (status, text)
    r = requests.put(f"{agent.addr}/v1/event/stream", timeout=10)
    assert (r.status_code, r.text.strip()) == (405, "Invalid method")


def test_a_heartbeat_is_an_empty_object_line(agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch) -> None:
    import nomadmesh.agent.http.nomad_events as endpoint
    monkeypatch.setattr(endpoint, "HEARTBEAT_S", 0.2)
    stream = lines(agent, topic="Deployment")  # nothing here deploys: the first line is a heartbeat
    try:
        assert next(stream) == {}
    finally:
        stream.close()


def test_heartbeats_continue_while_events_the_stream_skips_flow(agent: InProcessAgent,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import nomadmesh.agent.http.nomad_events as endpoint
    monkeypatch.setattr(endpoint, "HEARTBEAT_S", 1.0)
    done = threading.Event()

    def busy() -> None:  # Job events without pause, none of which the stream below selects
        v = 0
        while not done.is_set():
            v += 1
            register(agent, IDLE_HCL.replace("count = 0", f'count = 0\n    meta {{ v = "{v}" }}'))

    worker = threading.Thread(target=busy)
    worker.start()
    stream = lines(agent, topic="Deployment", index=agent.ctx.state.index + 1)
    try:
        assert next(stream) == {}
    finally:
        stream.close()
        done.set()
        worker.join(timeout=10)


def test_a_reader_that_falls_behind_the_buffer_is_disconnected_and_the_agent_goes_on(
        agent: InProcessAgent) -> None:
    agent.scheduler.events.size = 5  # a short buffer: a reader that stops reading falls out of it soon
    big = "x" * 60_000  # large events fill the connection's socket buffers, so the stream must wait
    with requests.get(f"{agent.addr}/v1/event/stream", params={"topic": "Job"}, stream=True, timeout=30) as r:
        assert r.status_code == 200
        for v in range(250):  # ~15 MB of Job events while this reader reads nothing
            register(agent, IDLE_HCL.replace("count = 0", f'count = 0\n    meta {{ v = "{v}{big}" }}'))
        received = sum(1 for line in r.iter_lines() if line)  # ends: the agent closed the stream
    assert 0 < received < 250
    assert agent.client.job.get_job("sleeper")["Version"] == 249  # the writes never waited for the reader
