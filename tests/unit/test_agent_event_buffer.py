"""The event stream's buffer (nomad/events.py): bounded, readers hold only a cursor, a reader that
fell out of the buffer is told so; and the Nomad event types inferred from a write's changes."""
from __future__ import annotations

import pytest

from nomadmesh.agent.nomad.events import EventBroker, SlowReader, Subscription, event_type, parse_topics
from nomadmesh.agent.state import Change


def job_change(index: int) -> list[Change]:
    return [Change("job", "web", None, {"ID": "web", "Namespace": "default", "Version": index})]


def test_the_buffer_keeps_the_last_batches_and_drops_a_reader_behind_it() -> None:
    broker = EventBroker(size=2)
    for index in (5, 7, 9):
        broker.publish(index, job_change(index))
    assert [i for i, _ in broker.after(6)] == [7, 9]
    with pytest.raises(SlowReader):
        broker.after(4)  # batch 5 left the buffer before this reader saw it
    # A new reader asking for an index older than the buffer starts at its oldest batch.
    assert [i for i, _ in broker.after(broker.start_cursor(1))] == [7, 9]
    assert [i for i, _ in broker.after(broker.start_cursor(9))] == [9]


def test_writes_that_are_no_nomad_object_publish_nothing() -> None:
    broker = EventBroker(size=2)
    broker.publish(3, [Change("kv", "a", None, {"Value": "x"})])
    assert broker.after(0) == []


@pytest.mark.parametrize(("changes", "expected"), [
    ([*job_change(1), Change("eval", "e", None, {"ID": "e"})], "JobRegistered"),
    ([Change("job", "web", {"ID": "web"}, {"ID": "web", "Stop": True})], "JobDeregistered"),
    ([Change("job", "web", {"ID": "web"}, None)], "JobDeregistered"),
    ([Change("alloc", "a", None, {"ID": "a", "DesiredStatus": "run"})], "PlanResult"),
    ([Change("alloc", "a", {"DesiredStatus": "run"}, {"DesiredStatus": "stop"})], "PlanResult"),
    ([Change("alloc", "a", {"DesiredStatus": "run", "ClientStatus": "pending"},
             {"DesiredStatus": "run", "ClientStatus": "running"})], "AllocationUpdated"),
    ([Change("deployment", "d", {"Status": "running"}, {"Status": "successful"})], "DeploymentStatusUpdate"),
    ([Change("eval", "e", {"Status": "pending"}, {"Status": "complete"})], "EvaluationUpdated"),
    ([Change("node", "n", None, {"ID": "n"})], "NodeRegistration"),
    ([Change("node", "n", {"ID": "n"}, {"ID": "n", "Status": "down"})], "NodeStreamEvent"),
])
def test_event_types_follow_nomads_message_types(changes: list[Change], expected: str) -> None:
    assert event_type(changes) == expected


def test_subscriptions_match_topic_key_filter_keys_and_namespace() -> None:
    alloc = {"Topic": "Allocation", "Key": "a1", "FilterKeys": ["web", ""], "Namespace": "default"}
    node = {"Topic": "Node", "Key": "n1", "FilterKeys": None, "Namespace": ""}
    assert Subscription(parse_topics(["Allocation:web"])).wants(alloc)
    assert Subscription(parse_topics(["Allocation:a1"])).wants(alloc)
    assert not Subscription(parse_topics(["Allocation:api"])).wants(alloc)
    assert not Subscription(parse_topics(["Job"])).wants(alloc)
    assert Subscription(parse_topics([])).wants(alloc)
    assert not Subscription(parse_topics([]), namespace="shop").wants(alloc)
    assert Subscription(parse_topics([]), namespace="shop").wants(node)
    assert Subscription(parse_topics(["*"]), namespace="*").wants(alloc)
    with pytest.raises(ValueError, match="Invalid key value pair for topic, topic: a:b:c"):
        parse_topics(["a:b:c"])
