"""Jobs that really run: host-mode tasks, logs, stop, deployments and auto-revert, over real HTTP."""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import requests

from support.agents import InProcessAgent
from support.nomad_jobs import get_text
from support.waiting import wait_until

S = 1_000_000_000

HTTP_JOB = """
job "web" {
  group "web" {
    network {
      port "http" {}
    }
    update {
      min_healthy_time = "1s"
      healthy_deadline = "20s"
      health_check     = "task_states"
      auto_revert      = true
    }
    restart {
      attempts = 1
      delay    = "200ms"
      interval = "1m"
      mode     = "fail"
    }
    task "server" {
      driver = "raw_exec"
      config {
        command = "python3"
        args    = ["-u", "-c", "%s", "${NOMAD_PORT_http}"]
      }
      env { GREETING = "hello from ${NOMAD_TASK_NAME}" }
      kill_timeout = "2s"
    }
  }
}
"""
SERVER = ("import http.server,os,sys,socketserver;"
          "print(os.environ['GREETING'], flush=True);"
          "h=type('H',(http.server.BaseHTTPRequestHandler,),{'do_GET':lambda s:(s.send_response(200),s.end_headers(),"
          "s.wfile.write(os.environ['NOMAD_ALLOC_ID'].encode()))});"
          "http.server.ThreadingHTTPServer(('127.0.0.1',int(sys.argv[1])),h).serve_forever()")
CRASH = "import sys; print('boom', file=sys.stderr, flush=True); sys.exit(3)"


def job_with(agent: InProcessAgent, program: str) -> dict[str, Any]:
    return agent.client.jobs.parse(HTTP_JOB % program.replace('"', '\\"'), canonicalize=True)


def running_alloc(agent: InProcessAgent, version: int = 0) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        for stub in agent.client.job.get_allocations("web"):
            if stub["ClientStatus"] == "running" and stub["JobVersion"] == version:
                return agent.client.allocation.get_allocation(stub["ID"])
        return None
    return wait_until(ready, 20)


def host_port(alloc: dict[str, Any]) -> int:
    return alloc["AllocatedResources"]["Shared"]["Ports"][0]["Value"]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


def test_host_mode_job_runs_serves_logs_and_stops(agent: InProcessAgent) -> None:
    agent.client.jobs.register_job({"Job": job_with(agent, SERVER)})
    alloc = running_alloc(agent)
    port = host_port(alloc)
    assert get_text(f"http://127.0.0.1:{port}/") == alloc["ID"]
    assert alloc["Name"] == "web.web[0]" and alloc["TaskStates"]["server"]["State"] == "running"

    plain = wait_until(lambda: (t := requests.get(f"{agent.addr}/v1/client/fs/logs/{alloc['ID']}",
                                                params={"task": "server", "type": "stdout", "plain": "true"}).text)
                     and t)
    assert plain == "hello from server\n"
    assert agent.client.client.stream_logs.stream(alloc["ID"], "server", "stdout", plain=True) == plain
    framed = requests.get(f"{agent.addr}/v1/client/fs/logs/{alloc['ID']}",
                          params={"task": "server", "type": "stdout", "origin": "end", "offset": 7})
    frame = json.loads(framed.text)
    assert base64.b64decode(frame["Data"]) == b"server\n" and frame["File"] == "alloc/logs/server.stdout.0"
    with requests.get(f"{agent.addr}/v1/client/fs/logs/{alloc['ID']}", stream=True, timeout=10,
                      params={"task": "server", "type": "stdout", "follow": "true"}) as followed:
        chunks = followed.iter_content(chunk_size=None)
        first = json.loads(next(chunks))
        assert base64.b64decode(first["Data"]) == b"hello from server\n"
        assert next(chunks) == b"{}"  # a heartbeat while the task is quiet
    bad = requests.get(f"{agent.addr}/v1/client/fs/logs/{alloc['ID']}", params={"task": "../x", "type": "stdout"})
    assert bad.status_code == 400

    dep = wait_until(lambda: (d := agent.client.job.get_deployment("web")) and d["Status"] == "successful" and d, 20)
    assert dep["TaskGroups"]["web"]["HealthyAllocs"] == 1
    assert agent.client.job.get_job("web")["Stable"] is True and agent.client.job.get_job("web")["Status"] == "running"

    pid = wait_until(lambda: agent.ctx.state.get("alloc", alloc["ID"]).value.get("_Handles", {}).get("server"))["Pid"]
    agent.client.job.deregister_job("web", purge=False)
    done = wait_until(
        lambda: (a := agent.client.allocation.get_allocation(alloc["ID"]))["ClientStatus"] == "complete" and a)
    assert done["DesiredStatus"] == "stop" and done["TaskStates"]["server"]["State"] == "dead"
    assert [e["Type"] for e in done["TaskStates"]["server"]["Events"]][-2:] == ["Terminated", "Killed"]
    assert not pid_alive(pid)
    wait_until(lambda: agent.client.job.get_job("web")["Status"] == "dead")


def test_crashing_update_fails_deployment_and_auto_reverts(agent: InProcessAgent) -> None:
    agent.client.jobs.register_job({"Job": job_with(agent, SERVER)})
    wait_until(lambda: (d := agent.client.job.get_deployment("web")) and d["Status"] == "successful", 20)
    agent.client.jobs.register_job({"Job": job_with(agent, CRASH)})
    failed = wait_until(lambda: next((d for d in agent.client.job.get_deployments("web")
                                    if d["JobVersion"] == 1 and d["Status"] == "failed"), None), 30)
    assert failed["StatusDescription"] == "Failed due to unhealthy allocations - rolling back to job version 0"
    crashed = [a for a in agent.client.job.get_allocations("web") if a["JobVersion"] == 1]
    assert crashed[0]["ClientStatus"] == "failed"
    assert crashed[0]["TaskStates"]["server"]["Restarts"] == 1  # restart block: 1 attempt, then fail
    job = wait_until(lambda: (j := agent.client.job.get_job("web"))["Version"] == 2 and j, 10)
    assert job["TaskGroups"][0]["Tasks"][0]["Config"]["args"][2] == SERVER
    alloc = running_alloc(agent, version=2)
    assert get_text(f"http://127.0.0.1:{host_port(alloc)}/") == alloc["ID"]
    wait_until(lambda: (d := agent.client.job.get_deployment("web")) and d["JobVersion"] == 2
             and d["Status"] == "successful", 20)
    stderr = requests.get(f"{agent.addr}/v1/client/fs/logs/{crashed[0]['ID']}",
                          params={"task": "server", "type": "stderr", "plain": "true"}).text
    assert stderr.count("boom") == 2


def test_rolling_update_replaces_one_at_a_time_and_meta_change_is_in_place(agent: InProcessAgent) -> None:
    job = job_with(agent, SERVER)
    job["TaskGroups"][0]["Count"] = 2
    agent.client.jobs.register_job({"Job": job})
    wait_until(lambda: (d := agent.client.job.get_deployment("web")) and d["Status"] == "successful", 20)
    first = {a["ID"] for a in agent.client.job.get_allocations("web")}

    job["Meta"] = {"note": "in place"}  # no task change: same allocations, new job version
    plan = agent.client.job.plan_job("web", {"Job": job})
    assert plan["Annotations"]["DesiredTGUpdates"]["web"]["InPlaceUpdate"] == 2
    agent.client.jobs.register_job({"Job": job})
    wait_until(lambda: {a["JobVersion"] for a in agent.client.job.get_allocations("web")} == {1}, 10)
    assert {a["ID"] for a in agent.client.job.get_allocations("web")} == first

    job["TaskGroups"][0]["Tasks"][0]["Env"]["GREETING"] = "changed"  # destructive
    plan = agent.client.job.plan_job("web", {"Job": job})
    assert plan["Annotations"]["DesiredTGUpdates"]["web"]["DestructiveUpdate"] == 2
    agent.client.jobs.register_job({"Job": job})
    seen_mixed = False
    def replaced() -> bool:
        nonlocal seen_mixed
        live = [a for a in agent.client.job.get_allocations("web") if a["DesiredStatus"] == "run"]
        versions = sorted(a["JobVersion"] for a in live)
        seen_mixed |= versions == [1, 2]  # max_parallel 1: one old still serving while one new starts
        return versions == [2, 2] and all(a["ClientStatus"] == "running" for a in live)
    wait_until(replaced, 30)
    assert seen_mixed
    assert not first & {a["ID"] for a in agent.client.job.get_allocations("web") if a["DesiredStatus"] == "run"}


def test_batch_job_runs_to_completion(agent: InProcessAgent) -> None:
    hcl = '''job "once" {
      type = "batch"
      group "once" {
        task "hello" {
          driver = "exec"
          config {
            command = "/bin/sh"
            args    = ["-c", "echo done in $NOMAD_ALLOC_NAME"]
          }
        }
      }
    }'''
    agent.client.jobs.register_job({"Job": agent.client.jobs.parse(hcl, canonicalize=True)})
    stub = wait_until(lambda: next((a for a in agent.client.job.get_allocations("once")
                                  if a["ClientStatus"] == "complete"), None), 15)
    assert stub["TaskStates"]["hello"]["State"] == "dead" and stub["TaskStates"]["hello"]["Failed"] is False
    assert agent.client.client.stream_logs.stream(stub["ID"], "hello", "stdout", plain=True) == "done in once.once[0]\n"
    assert agent.client.job.get_deployment("once") is None  # batch jobs get no deployment
    wait_until(lambda: agent.client.job.get_job("once")["Status"] == "dead", 10)


def test_purged_job_registered_again_gets_a_new_deployment(agent: InProcessAgent) -> None:
    # `nomadmesh down` then `up` does this: the new job starts at version 0 again, and must not be
    # mistaken for the purged job's version 0 (whose deployment may have ended long ago).
    agent.client.jobs.register_job({"Job": job_with(agent, SERVER)})
    first = wait_until(lambda: (d := agent.client.job.get_deployment("web")) and d["Status"] == "successful" and d, 20)
    agent.client.job.deregister_job("web", purge=True)
    wait_until(lambda: all(a["ClientStatus"] != "running" for a in agent.client.allocations.get_allocations()), 20)
    agent.client.jobs.register_job({"Job": job_with(agent, SERVER)})
    second = wait_until(lambda: (d := agent.client.job.get_deployment("web")) and d["ID"] != first["ID"]
                      and d["Status"] == "successful" and d, 20)
    assert second["JobVersion"] == 0 and second["TaskGroups"]["web"]["HealthyAllocs"] == 1


FAILING_BATCH = """
job "flaky" {
  type = "batch"
  group "flaky" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts       = 1
      interval       = "1h"
      delay          = "5s"
      delay_function = "constant"
      unlimited      = false
    }
    task "fail" {
      driver = "raw_exec"
      config {
        command = "python3"
        args    = ["-c", "import sys; sys.exit(3)"]
      }
    }
  }
}
"""


def test_a_failed_batch_allocation_is_rescheduled_once_after_its_delay(agent: InProcessAgent) -> None:
    """Host mode, no root: the reschedule block's one attempt in the hour, 5 s after the failure."""
    job = agent.client.jobs.parse(FAILING_BATCH, canonicalize=True)
    agent.client.jobs.register_job({"Job": job})
    first = wait_until(lambda: next((a for a in agent.client.job.get_allocations("flaky")
                                   if a["ClientStatus"] == "failed"), None), 20)
    follow = wait_until(lambda: agent.client.allocation.get_allocation(first["ID"])["FollowupEvalID"], 10)
    assert agent.client.evaluation.get_evaluation(follow)["WaitUntil"] != "0001-01-01T00:00:00Z"
    second = wait_until(lambda: next((a for a in agent.client.job.get_allocations("flaky")
                                    if a["ID"] != first["ID"] and a["ClientStatus"] == "failed"), None), 30)
    second = agent.client.allocation.get_allocation(second["ID"])
    assert second["PreviousAllocation"] == first["ID"]
    assert [e["PrevAllocID"] for e in second["RescheduleTracker"]["Events"]] == [first["ID"]]
    tracked = second["RescheduleTracker"]["Events"][0]
    assert tracked["Delay"] == 5_000_000_000
    # The one attempt is spent: the second failure is evaluated and nothing more is placed.
    wait_until(lambda: [e for e in agent.client.job.get_evaluations("flaky") if e["TriggeredBy"] == "alloc-failure"
                      and e["Status"] == "complete" and e["CreateIndex"] > second["CreateIndex"]], 10)
    assert agent.client.allocation.get_allocation(second["ID"])["FollowupEvalID"] == ""
    assert len(agent.client.job.get_allocations("flaky")) == 2
