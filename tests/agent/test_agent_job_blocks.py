"""Job blocks the dev agent honours as `nomad agent -dev` does on one node, over real HTTP with
python-nomad, on an in-process agent that really runs the tasks (raw_exec)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from support.agents import InProcessAgent
from support.waiting import wait_until


def register(agent: InProcessAgent, hcl: str) -> None:
    agent.client.jobs.register_job({"Job": agent.client.jobs.parse(hcl, canonicalize=True)})


def running(agent: InProcessAgent, job: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        for stub in agent.client.job.get_allocations(job):
            if stub["ClientStatus"] == "running":
                return dict(agent.client.allocation.get_allocation(stub["ID"]))
        return None
    return wait_until(ready, 20)


def task_pid(agent: InProcessAgent, alloc_id: str, task: str) -> int:
    handles = wait_until(lambda: (agent.ctx.state.get("alloc", alloc_id).value.get("_Handles") or {}).get(task))
    return int(handles["Pid"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


SLEEPER = 'config {\n        command = "sleep"\n        args    = ["3600"]\n      }'

SHUTDOWN_DELAY = """
job "slow" {
  group "slow" {
    shutdown_delay = "1s"
    service {
      name     = "slow"
      provider = "consul"
    }
    task "app" {
      driver         = "raw_exec"
      shutdown_delay = "2s"
      SLEEPER
    }
  }
}
""".replace("SLEEPER", SLEEPER)


def test_shutdown_delay_deregisters_services_then_waits_then_kills(agent: InProcessAgent) -> None:
    register(agent, SHUTDOWN_DELAY)
    alloc = running(agent, "slow")
    wait_until(lambda: [s for s in agent.catalog.services() if s["Service"] == "slow"])
    pid = task_pid(agent, alloc["ID"], "app")
    agent.client.job.deregister_job("slow", purge=False)
    # The service leaves the catalog first; the task is still running then, waiting out the delays.
    wait_until(lambda: not [s for s in agent.catalog.services() if s["Service"] == "slow"])
    assert alive(pid)
    waiting = wait_until(lambda: [e for e in agent.client.allocation.get_allocation(alloc["ID"])["TaskStates"]["app"]
                                  ["Events"] if e["Type"] == "Waiting for shutdown delay"])
    assert waiting[0]["DisplayMessage"] == "Waiting for shutdown_delay of 2s before killing the task."
    assert alive(pid)
    wait_until(lambda: not alive(pid), 15)
    done = wait_until(lambda: (a := agent.client.allocation.get_allocation(alloc["ID"]))["ClientStatus"] == "complete"
                      and a)
    events = [e["Type"] for e in done["TaskStates"]["app"]["Events"]]
    assert events[-1] == "Killed" and events.index("Waiting for shutdown delay") < events.index("Killing")


LEADER = """
job "led" {
  type = "batch"
  group "led" {
    task "leader" {
      driver = "raw_exec"
      leader = true
      config {
        command = "sleep"
        args    = ["1"]
      }
    }
    task "follower" {
      driver = "raw_exec"
      SLEEPER
    }
  }
}
""".replace("SLEEPER", SLEEPER)


def test_when_the_leader_exits_the_other_tasks_are_killed(agent: InProcessAgent) -> None:
    register(agent, LEADER)
    alloc = running(agent, "led")
    follower = task_pid(agent, alloc["ID"], "follower")
    done = wait_until(lambda: (a := agent.client.allocation.get_allocation(alloc["ID"]))["ClientStatus"] == "complete"
                      and a, 20)
    assert not alive(follower)
    events = [e["Type"] for e in done["TaskStates"]["follower"]["Events"]]
    assert "Leader Task Dead" in events and events[-1] == "Killed"
    assert done["TaskStates"]["leader"]["Failed"] is False and done["TaskStates"]["follower"]["State"] == "dead"


ARTIFACTS = """
job "art" {
  group "art" {
    task "app" {
      driver = "raw_exec"
      artifact {
        source = "SRC/hello.txt"
      }
      artifact {
        source      = "file://SRC/site"
        destination = "local/site"
      }
      artifact {
        source      = "SRC/bundle.tar.gz"
        destination = "local/unpacked"
        options {
          checksum = "sha256:SUM"
        }
      }
      artifact {
        source      = "SRC/hello.txt"
        destination = "../alloc/data/greeting"
        mode        = "file"
      }
      SLEEPER
    }
  }
}
""".replace("SLEEPER", SLEEPER)


def artifact_sources(tmp: Path) -> tuple[Path, str]:
    import hashlib
    import tarfile
    src = tmp / "src"
    (src / "site" / "css").mkdir(parents=True)
    (src / "hello.txt").write_text("hello\n")
    (src / "site" / "index.html").write_text("<p>hi</p>")
    (src / "site" / "css" / "a.css").write_text("p{}")
    with tarfile.open(src / "bundle.tar.gz", "w:gz") as t:
        t.add(src / "site", arcname="bundle")
    return src, hashlib.sha256((src / "bundle.tar.gz").read_bytes()).hexdigest()


def test_local_artifacts_land_where_go_getter_puts_them(agent: InProcessAgent, tmp_path: Path) -> None:
    src, digest = artifact_sources(tmp_path)
    register(agent, ARTIFACTS.replace("SRC", str(src)).replace("SUM", digest))
    alloc = running(agent, "art")
    root = Path(agent.ctx.config.alloc_root) / alloc["ID"]
    local = root / "app" / "local"
    assert (local / "hello.txt").read_text() == "hello\n"  # a plain file: into the dir, own name
    assert (local / "site" / "index.html").read_text() == "<p>hi</p>"  # a dir: its contents
    assert (local / "site" / "css" / "a.css").read_text() == "p{}"
    assert (local / "unpacked" / "bundle" / "css" / "a.css").read_text() == "p{}"  # an archive: unpacked
    assert (root / "alloc" / "data" / "greeting").read_text() == "hello\n"  # mode file: the file itself


def test_a_checksum_mismatch_fails_the_task(agent: InProcessAgent, tmp_path: Path) -> None:
    src, _ = artifact_sources(tmp_path)
    register(agent, ARTIFACTS.replace("SRC", str(src)).replace("SUM", "0" * 64))
    def failed() -> dict[str, Any] | None:
        for stub in agent.client.job.get_allocations("art"):
            state = (stub.get("TaskStates") or {}).get("app") or {}
            if state.get("State") == "dead":
                return dict(state)
        return None
    state = wait_until(failed, 20)
    last = state["Events"][-1]
    assert state["Failed"] and last["Type"] == "Failed Artifact Download"
    assert "Checksums did not match for bundle.tar.gz" in last["DisplayMessage"]


def test_artifacts_the_agent_cannot_fetch_are_refused_at_register(agent: InProcessAgent, tmp_path: Path) -> None:
    import requests
    for source in ("https://releases.hashicorp.com/x.zip", "s3::https://bucket/x", "git::https://github.com/a/b"):
        job = agent.client.jobs.parse(ARTIFACTS.replace("SRC/hello.txt", source).replace("SRC", "/tmp"),
                                      canonicalize=True)
        r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": job})
        assert r.status_code == 400, source
        assert r.text.startswith("Task group art validation failed: Task app validation failed: "
                                 "Artifact 1 validation failed: artifact source")
        assert "not supported by the dev agent" in r.text
    escaping = agent.client.jobs.parse(ARTIFACTS.replace("../alloc/data/greeting", "../../../etc/x")
                                       .replace("SRC", "/tmp"), canonicalize=True)
    r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": escaping})
    assert r.status_code == 500 and "Artifact 4 validation failed: destination escapes allocation directory" in r.text
    assert agent.client.jobs.get_jobs() == []


AFFINITY = """
job "aff" {
  group "aff" {
    affinity {
      attribute = "${node.datacenter}"
      value     = "elsewhere"
      weight    = WEIGHT
    }
    task "app" {
      driver = "raw_exec"
      SLEEPER
    }
  }
}
""".replace("SLEEPER", SLEEPER)


def test_an_affinity_is_validated_and_the_one_node_is_still_used(agent: InProcessAgent) -> None:
    import requests
    bad = agent.client.jobs.parse(AFFINITY.replace("WEIGHT", "0"), canonicalize=True)
    r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": bad})
    assert r.status_code == 500 and "Affinity 1 validation failed: Affinity weight cannot be zero" in r.text
    # An affinity only scores nodes: with one node, even an unmet one places the allocation (as in Nomad).
    register(agent, AFFINITY.replace("WEIGHT", "80"))
    alloc = running(agent, "aff")
    assert alloc["Job"]["TaskGroups"][0]["Affinities"][0]["Weight"] == 80


KILL = """
job "kill" {
  group "kill" {
    task "polite" {
      driver      = "raw_exec"
      kill_signal = "SIGUSR1"
      config {
        command = "python3"
        args    = ["-u", "-c", "POLITE"]
      }
    }
    task "stubborn" {
      driver       = "raw_exec"
      kill_timeout = "1s"
      config {
        command = "python3"
        args    = ["-u", "-c", "STUBBORN"]
      }
    }
  }
}
"""
POLITE = ("import signal,sys,time;signal.signal(signal.SIGUSR1,lambda *a:(print('got USR1'),sys.exit(0)));"
          "print('up');time.sleep(3600)")
STUBBORN = "import signal,time;signal.signal(signal.SIGINT,signal.SIG_IGN);print('up');time.sleep(3600)"


def test_kill_signal_and_kill_timeout_are_honoured(agent: InProcessAgent) -> None:
    import requests
    register(agent, KILL.replace("POLITE", POLITE).replace("STUBBORN", STUBBORN))
    alloc = running(agent, "kill")

    def out(task: str) -> str:
        return requests.get(f"{agent.addr}/v1/client/fs/logs/{alloc['ID']}",
                            params={"task": task, "type": "stdout", "plain": "true"}).text

    wait_until(lambda: out("polite") == "up\n" and out("stubborn") == "up\n")
    stubborn = task_pid(agent, alloc["ID"], "stubborn")
    agent.client.job.deregister_job("kill", purge=False)
    done = wait_until(lambda: (a := agent.client.allocation.get_allocation(alloc["ID"]))["ClientStatus"] == "complete"
                      and a, 20)
    assert out("polite") == "up\ngot USR1\n"  # its kill_signal, not SIGINT
    killing = [e for e in done["TaskStates"]["stubborn"]["Events"] if e["Type"] == "Killing"]
    assert killing[0]["Details"]["kill_timeout"] == "1s" and not alive(stubborn)  # SIGINT ignored: SIGKILL after 1s


def test_a_vault_block_is_refused_as_nomad_refuses_a_disabled_vault(agent: InProcessAgent) -> None:
    import requests
    vault_block = 'vault {\n        policies = ["db"]\n      }'
    hcl = AFFINITY.replace("WEIGHT", "50").replace('driver = "raw_exec"', f'driver = "raw_exec"\n      {vault_block}')
    job = agent.client.jobs.parse(hcl, canonicalize=True)
    vault = job["TaskGroups"][0]["Tasks"][0]["Vault"]
    assert vault["Cluster"] == "default" and vault["Policies"] == ["db"] and vault["ChangeMode"] == "restart"
    r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": job})
    assert r.status_code == 500
    assert r.text.rstrip() == '1 error occurred:\n\t* Vault "default" not enabled but used in the job'
    assert agent.client.jobs.get_jobs() == []
