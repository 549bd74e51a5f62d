"""Stored jobs migrated once at start (nomad/migrations.py): a job an older agent stored without its
Connect sidecar gets the sidecar task and ports in the job, its versions and its allocations,
exactly as registration adds them today; jobs keyed by ID alone are keyed by (namespace, ID); each
migration is recorded and never runs twice."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nomadmesh.agent.nomad import connect_hook, evals, jobs, migrations, spec
from nomadmesh.agent.nomad.node import node_document
from nomadmesh.agent.state import State
from nomadmesh.definitions import load_spec
from nomadmesh.render import render
from support.paths import REPO


def submitted(name: str) -> dict[str, Any]:
    return json.loads(render(load_spec(REPO / "services"), "json")[f"{name}.nomad.json"])["Job"]


@pytest.fixture
def old_state(tmp_path: Path):
    """A state as an older agent left it: "tax" registered and placed without sidecar injection."""
    state = State(tmp_path / "state.db")
    old = spec.canonicalize(spec.from_json(submitted("tax")))
    assert connect_hook.inject(old) != old  # it has a sidecar to inject
    out = jobs.register(state, old)
    evals.process(state, out["EvalID"], node_document("node-1", "n1", "dc1", "127.0.0.1:4646", None, 1))
    yield state
    state.close()


def task_names(job: dict[str, Any]) -> list[str]:
    return sorted(t["Name"] for tg in job["TaskGroups"] for t in tg["Tasks"])


def test_an_old_job_gets_its_sidecar_as_registration_adds_it(old_state: State) -> None:
    assert migrations.migrate(old_state) == [migrations.INJECT_SIDECARS, migrations.NAMESPACE_JOB_KEYS]
    (job,) = old_state.values("job")
    assert job["TaskGroups"] == spec.prepare(submitted("tax"))["TaskGroups"]
    (version,) = old_state.values("job_version")
    assert version["TaskGroups"] == job["TaskGroups"]
    allocs = old_state.values("alloc")
    assert allocs and all(task_names(a["Job"]) == task_names(job) for a in allocs)
    assert "connect-proxy-tax" in task_names(job)
    held = [p["Value"] for a in allocs for p in a["AllocatedResources"]["Shared"]["Ports"]]
    for alloc in allocs:
        labels = {p["Label"] for p in alloc["AllocatedResources"]["Shared"]["Ports"]}
        assert "connect-proxy-tax" in labels
    assert len(held) == len(set(held))  # the new ports collide with no port already held


def test_the_migration_runs_once(old_state: State) -> None:
    migrations.migrate(old_state)
    before = {kind: old_state.values(kind) for kind in ("job", "job_version", "alloc")}
    assert migrations.migrate(old_state) == []
    assert {kind: old_state.values(kind) for kind in before} == before
    assert old_state.get("meta", migrations.META_KEY).value == [migrations.INJECT_SIDECARS,
                                                                 migrations.NAMESPACE_JOB_KEYS]


def test_jobs_registered_today_are_left_alone(tmp_path: Path) -> None:
    state = State(tmp_path / "state.db")
    try:
        jobs.register(state, spec.prepare(submitted("tax")))
        (job,) = state.values("job")
        migrations.migrate(state)
        assert state.values("job") == [job]
    finally:
        state.close()


def test_jobs_keyed_by_id_alone_are_keyed_by_namespace_and_id(tmp_path: Path) -> None:
    """What an agent that kept one job per ID stored: job, version and source keyed "<ID>" and
    "<ID>/<version>"; after the migration each is found in its namespace."""
    state = State(tmp_path / "state.db")
    try:
        job = dict(spec.prepare(submitted("tax")), ID="a/b", Name="a/b", Namespace="shop-prod", Version=0)
        source = {"Source": "job {}", "Format": "hcl2", "Namespace": "shop-prod", "JobID": "a/b", "Version": 0}
        with state.write() as txn:
            txn.put("job", "a/b", job)
            txn.put("job_version", "a/b/0000000000", job)
            txn.put(jobs.SUBMISSION_KIND, "a/b/0000000000", source)
            txn.put("meta", migrations.META_KEY, [migrations.INJECT_SIDECARS])
        assert jobs.get(state, "shop-prod", "a/b") is None
        assert migrations.migrate(state) == [migrations.NAMESPACE_JOB_KEYS]
        assert jobs.get(state, "shop-prod", "a/b") == job and jobs.get(state, "default", "a/b") is None
        assert [r.value for r in jobs.versions(state, "shop-prod", "a/b")] == [job]
        assert jobs.submission(state, "shop-prod", "a/b", 0) == source
        assert [r.key for r in state.records("job")] == ["shop-prod/a/b"]
    finally:
        state.close()
