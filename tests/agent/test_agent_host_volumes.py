"""Host volumes declared in the agent's config file (`--config`, Nomad's client.host_volume), over
real HTTP: the node fingerprints them, a group asking for one the node lacks (or a read-write
request of a read-only one) is Nomad's placement failure, raw_exec cannot mount them (Nomad's
error), and an exec task sees them bound at their destination in its own mount namespace."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from support.agents import RunningAgent, started_agents
from support.waiting import wait_until

JOB = """
job "%s" {
  group "g" {
    volume "data" {
      type      = "host"
      source    = "%s"
      read_only = %s
    }
    volume "conf" {
      type      = "host"
      source    = "conf"
      read_only = true
    }
    restart {
      attempts = 0
      mode     = "fail"
    }
    task "t" {
      driver = "%s"
      config {
        command = "/bin/sh"
        args    = ["-c", "%s"]
      }
      volume_mount {
        volume      = "data"
        destination = "/srv/data"
      }
      volume_mount {
        volume      = "conf"
        destination = "/etc/app"
      }
    }
  }
}
"""
# Writes into the read-write volume, reads the read-only one and tries to write it; then stays up.
SCRIPT = ("cd $NOMAD_TASK_DIR/..; echo written > srv/data/out; cat etc/app/c.txt; "
          "(echo x > etc/app/w) 2>/dev/null || echo read-only; sleep 300")


@pytest.fixture(scope="module")
def volumes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("volumes")
    shared, conf = root / "shared", root / "conf"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)  # exec tasks run as nobody
    conf.mkdir()
    (conf / "c.txt").write_text("from the host\n")
    os.chmod(root, 0o755)
    return {"shared": shared, "conf": conf}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, volumes: dict[str, Path]) -> Iterator[RunningAgent]:
    cfg = tmp_path_factory.mktemp("config") / "client.hcl"
    cfg.write_text('client {\n'
                   f'  host_volume "shared" {{\n    path = "{volumes["shared"]}"\n  }}\n'
                   f'  host_volume "conf" {{\n    path      = "{volumes["conf"]}"\n    read_only = true\n  }}\n'
                   '}\n')
    factory = started_agents(tmp_path_factory)
    try:
        yield next(factory)("--config", str(cfg))
    finally:
        factory.close()


def _register(agent: RunningAgent, job_id: str, source: str, read_only: str, driver: str) -> dict[str, Any]:
    hcl = JOB % (job_id, source, read_only, driver, SCRIPT)
    job = requests.post(f"{agent.nomad_addr}/v1/jobs/parse", json={"JobHCL": hcl}, timeout=10).json()
    r = requests.post(f"{agent.nomad_addr}/v1/jobs", json={"Job": job}, timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _get(agent: RunningAgent, path: str) -> Any:
    return requests.get(f"{agent.nomad_addr}{path}", timeout=10).json()


def _alloc(agent: RunningAgent, job_id: str) -> Callable[[], dict[str, Any] | None]:
    def find() -> dict[str, Any] | None:
        stubs = _get(agent, f"/v1/job/{job_id}/allocations")
        return _get(agent, f"/v1/allocation/{stubs[0]['ID']}") if stubs else None
    return find


def test_the_node_fingerprints_its_host_volumes(agent: RunningAgent, volumes: dict[str, Path]) -> None:
    (stub,) = _get(agent, "/v1/nodes")
    node = _get(agent, f"/v1/node/{stub['ID']}")
    assert node["HostVolumes"] == {
        "shared": {"Name": "shared", "Path": str(volumes["shared"]), "ReadOnly": False, "ID": ""},
        "conf": {"Name": "conf", "Path": str(volumes["conf"]), "ReadOnly": True, "ID": ""}}


@pytest.mark.parametrize(("job_id", "source", "read_only"), [("hv-missing", "nope", "false"),
                                                              ("hv-rw-of-ro", "conf", "false")])
def test_a_volume_the_node_cannot_give_is_a_placement_failure(agent: RunningAgent, job_id: str, source: str,
                                                              read_only: str) -> None:
    out = _register(agent, job_id, source, read_only, "exec")
    ev = wait_until(lambda: (e := _get(agent, f"/v1/evaluation/{out['EvalID']}"))["Status"] == "complete" and e, 10)
    assert ev["FailedTGAllocs"]["g"]["ConstraintFiltered"] == {"missing compatible host volumes": 1}
    assert _get(agent, f"/v1/job/{job_id}/allocations") == []
    requests.delete(f"{agent.nomad_addr}/v1/job/{job_id}?purge=true", timeout=10)


def test_raw_exec_cannot_mount_host_volumes(agent: RunningAgent) -> None:
    _register(agent, "hv-raw", "shared", "false", "raw_exec")
    state = wait_until(lambda: (a := _alloc(agent, "hv-raw")()) and ((t := (a["TaskStates"] or {}).get("t") or {})
                                                                    ["State"] == "dead") and t, 15)
    last = state["Events"][-1]
    assert state["Failed"] and last["Type"] == "Task hook failed"
    assert last["DisplayMessage"] == 'volumes: task driver "raw_exec" for "t" does not support host volumes'
    requests.delete(f"{agent.nomad_addr}/v1/job/hv-raw?purge=true", timeout=10)


@pytest.mark.root
def test_an_exec_task_sees_its_volumes_bound_in_its_own_mount_namespace(agent: RunningAgent,
                                                                        volumes: dict[str, Path]) -> None:
    _register(agent, "hv-exec", "shared", "false", "exec")
    alloc = wait_until(lambda: (a := _alloc(agent, "hv-exec")()) and a["ClientStatus"] == "running" and a, 15)

    def stdout() -> str:
        return requests.get(f"{agent.nomad_addr}/v1/client/fs/logs/{alloc['ID']}", timeout=10,
                            params={"task": "t", "type": "stdout", "plain": "true"}).text

    assert wait_until(lambda: stdout().endswith("read-only\n") and stdout(), 10) == "from the host\nread-only\n"
    assert (volumes["shared"] / "out").read_text() == "written\n"  # written through the bind mount
    assert not (volumes["conf"] / "w").exists()
    # the mounts are the task's own: the host sees empty mount points in the task dir
    task_dir = agent.alloc_dir / alloc["ID"] / "t"
    assert not os.path.ismount(task_dir / "srv" / "data") and not (task_dir / "srv" / "data" / "out").exists()
    requests.delete(f"{agent.nomad_addr}/v1/job/hv-exec?purge=true", timeout=10)
    wait_until(lambda: _alloc(agent, "hv-exec")() is None or _alloc(agent, "hv-exec")()["ClientStatus"] != "running",
               15)
    assert (volumes["shared"] / "out").exists()  # the allocation's removal never reached into the volume
