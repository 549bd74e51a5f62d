"""`template` blocks on the real agent: rendered before the task starts, with their content, mode
and env; functions the agent cannot render are refused at registration, never ignored."""
from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import requests

from support.agents import InProcessAgent
from support.waiting import wait_until

JOB = """
job "tpl" {
  group "g" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    task "app" {
      driver = "raw_exec"
      config {
        command = "python3"
        args    = ["-c", "%s"]
      }
      env { FROM_JOB = "job" }
%s
    }
  }
}
"""
# Prints what the task sees (its env and the rendered files), then stays up.
SHOW = ("import json,os,time;"
        "print(json.dumps({k: os.environ.get(k) for k in ('DB_HOST','DB_PORT','FROM_JOB','MODE')}),flush=True);"
        "time.sleep(300)")

TEMPLATES = '''
      template {
        data        = <<EOF
host={{ key "app/db/host" }}
port={{ keyOrDefault "app/db/port" "5432" }}
alloc={{ env "NOMAD_ALLOC_ID" }}
EOF
        destination = "local/app.conf"
        perms       = "0640"
      }
      template {
        data        = <<EOF
DB_HOST=[[ key "app/db/host" ]]
DB_PORT=[[ keyOrDefault "app/db/port" "5432" ]]
FROM_JOB=tpl
EOF
        destination = "secrets/app.env"
        env         = true
        left_delimiter  = "[["
        right_delimiter = "]]"
      }
'''


def _job(agent: InProcessAgent, templates: str) -> dict[str, Any]:
    return agent.client.jobs.parse(JOB % (SHOW.replace('"', '\\"'), templates), canonicalize=True)


def _put_key(agent: InProcessAgent, key: str, value: str) -> None:
    """What PUT /v1/kv/<key> stores (the Consul half is not served by the in-process agent)."""
    agent.ctx.state.put("kv", key, {"Flags": 0, "Value": base64.b64encode(value.encode()).decode()})


def _alloc(agent: InProcessAgent) -> dict[str, Any]:
    stub = wait_until(lambda: next(iter(agent.client.job.get_allocations("tpl")), None), 10)
    return agent.client.allocation.get_allocation(stub["ID"])


def _stdout(agent: InProcessAgent, alloc_id: str) -> str:
    return requests.get(f"{agent.addr}/v1/client/fs/logs/{alloc_id}",
                        params={"task": "app", "type": "stdout", "plain": "true"}, timeout=10).text


def test_templates_render_before_start_with_mode_and_env(agent: InProcessAgent) -> None:
    agent.client.jobs.register_job({"Job": _job(agent, TEMPLATES)})
    alloc = _alloc(agent)
    # The key does not exist yet: the task waits, as Nomad's template hook blocks it.
    missing = wait_until(lambda: next((e for e in (_alloc(agent)["TaskStates"].get("app") or {}).get("Events") or []
                                       if e["Type"] == "Template"), None), 10)
    assert missing["DisplayMessage"] == "Missing: kv.block(app/db/host)"
    assert _alloc(agent)["TaskStates"]["app"]["State"] == "pending"
    task_dir = Path(agent.ctx.config.alloc_root) / alloc["ID"] / "app"
    assert not (task_dir / "local" / "app.conf").exists()

    _put_key(agent, "app/db/host", "10.1.2.3")
    wait_until(lambda: _alloc(agent)["ClientStatus"] == "running", 10)
    conf = task_dir / "local" / "app.conf"
    assert conf.read_text() == f"host=10.1.2.3\nport=5432\nalloc={alloc['ID']}\n"
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(task_dir / "secrets" / "app.env").st_mode) == 0o644  # Nomad's default perms
    seen = json.loads(wait_until(lambda: _stdout(agent, alloc["ID"]), 10))
    # env = true: the file's variables reach the task and override its env block
    assert seen == {"DB_HOST": "10.1.2.3", "DB_PORT": "5432", "FROM_JOB": "tpl", "MODE": None}


def test_unsupported_function_is_refused_at_registration(agent: InProcessAgent) -> None:
    refused = '''
      template {
        data        = "{{ range service \\"api\\" }}{{ .Address }}{{ end }}"
        destination = "local/x"
      }
      template {
        data        = "{{ with secret \\"kv/x\\" }}{{ .Data }}{{ end }}"
        destination = "local/y"
      }
'''
    job = _job(agent, refused)
    r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": job}, timeout=10)
    assert r.status_code == 400
    assert r.text.strip() == ('Task group g validation failed: Task app validation failed: Template 2 validation '
                              'failed: line 1: action "with" not supported by the dev agent (it renders env, '
                              'key, keyOrDefault, range service/connect/ls/nomadVar, with nomadVar; arguments are '
                              'string literals)')
    assert requests.get(f"{agent.addr}/v1/job/tpl", timeout=10).status_code == 404  # nothing stored
    job["TaskGroups"][0]["Tasks"][0]["Templates"][0]["EmbeddedTmpl"] = '{{ key "a" | toJSON }}'
    r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": job}, timeout=10)
    assert r.status_code == 400 and 'function "toJSON" not supported by the dev agent' in r.text


def test_destination_escaping_the_allocation_is_refused_with_nomads_error(agent: InProcessAgent) -> None:
    job = _job(agent, '      template {\n        data = "x"\n        destination = "../../../etc/x"\n      }\n')
    r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": job}, timeout=10)
    assert r.status_code == 500
    assert "Template 1 validation failed: destination escapes allocation directory" in r.text


def test_a_template_that_cannot_render_fails_the_task(agent: InProcessAgent) -> None:
    # Valid for Nomad's server (it does not parse templates), fails when rendered, as in Nomad.
    broken = '      template {\n        data = "{{ key \\"a\\" "\n        destination = "local/x"\n      }\n'
    agent.client.jobs.register_job({"Job": _job(agent, broken)})
    failed = wait_until(lambda: (a := _alloc(agent))["ClientStatus"] == "failed" and a, 10)
    events = failed["TaskStates"]["app"]["Events"]
    assert events[-2]["Type"] == "Killing"
    assert events[-2]["DisplayMessage"] == "Template failed: parse: line 1: unclosed action"
    assert failed["TaskStates"]["app"]["Failed"] is True


WATCH = ("import os,signal,time;"
         "signal.signal(signal.SIGHUP, lambda *a: print('hup', flush=True));"
         "print('start', os.environ.get('MODE'), flush=True);"
         "time.sleep(300)")
CHANGE_MODES = '''
      template {
        data        = "MODE={{ key \\"app/mode\\" }}"
        destination = "secrets/mode.env"
        env         = true
        splay       = "0s"
      }
      template {
        data          = "{{ keyOrDefault \\"app/sig\\" \\"0\\" }}"
        destination   = "local/sig"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        splay         = "0s"
      }
      template {
        data        = "{{ keyOrDefault \\"app/noop\\" \\"0\\" }}"
        destination = "local/noop"
        change_mode = "noop"
      }
'''


def test_kv_changes_rerender_with_each_change_mode(agent: InProcessAgent) -> None:
    job = agent.client.jobs.parse(JOB % (WATCH.replace('"', '\\"'), CHANGE_MODES), canonicalize=True)
    _put_key(agent, "app/mode", "one")
    agent.client.jobs.register_job({"Job": job})
    alloc = wait_until(lambda: (a := _alloc(agent))["ClientStatus"] == "running" and a, 10)
    local = Path(agent.ctx.config.alloc_root) / alloc["ID"] / "app" / "local"
    wait_until(lambda: _stdout(agent, alloc["ID"]) == "start one\n", 10)

    _put_key(agent, "app/noop", "1")  # noop: the file changes, the task is left alone
    wait_until(lambda: (local / "noop").read_text() == "1", 10)
    _put_key(agent, "app/sig", "1")  # signal: the file changes and the task gets SIGHUP
    wait_until(lambda: (local / "sig").read_text() == "1", 10)
    assert wait_until(lambda: (out := _stdout(agent, alloc["ID"])).endswith("hup\n") and out, 10) == "start one\nhup\n"
    assert _alloc(agent)["TaskStates"]["app"]["Restarts"] == 0

    _put_key(agent, "app/mode", "two")  # restart (the default), with the env file's new value
    wait_until(lambda: _stdout(agent, alloc["ID"]).endswith("start two\n"), 20)
    state = wait_until(lambda: (t := _alloc(agent)["TaskStates"]["app"])["State"] == "running" and t, 10)
    assert state["Restarts"] == 1
    kinds = [e["Type"] for e in state["Events"]]
    assert "Restart Signaled" in kinds and "Signaling" in kinds
    signaled = next(e for e in state["Events"] if e["Type"] == "Restart Signaled")
    assert signaled["DisplayMessage"] == "Template with change_mode restart re-rendered"



PREPARE = """import os; open(os.environ["NOMAD_ALLOC_DIR"] + "/in.tpl", "w").write('X={{ keyOrDefault "k" "dflt" }}')"""
SOURCE_JOB = """
job "tpl" {
  group "g" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    task "prepare" {
      driver = "raw_exec"
      lifecycle {
        hook = "prestart"
      }
      config {
        command = "python3"
        args    = ["-c", "%s"]
      }
    }
    task "app" {
      driver = "raw_exec"
      config {
        command = "python3"
        args    = ["-c", "import time; print(open('local/out').read(), flush=True); time.sleep(300)"]
      }
      template {
        source      = "%s"
        destination = "local/out"
      }
    }
  }
}
"""


def _source_job(agent: InProcessAgent, source: str) -> dict[str, Any]:
    return agent.client.jobs.parse(SOURCE_JOB % (PREPARE.replace('"', '\\"'), source))

def test_a_source_file_inside_the_allocation_renders(agent: InProcessAgent) -> None:
    # A prestart task writes the template into the shared alloc dir; the main task's template reads it.
    agent.client.jobs.register_job({"Job": _source_job(agent, "../alloc/in.tpl")})
    alloc = wait_until(lambda: (a := _alloc(agent))["TaskStates"].get("app", {}).get("State") == "running" and a, 15)
    assert wait_until(lambda: _stdout(agent, alloc["ID"]), 10) == "X=dflt\n"


def test_a_source_outside_the_allocation_fails_the_task_with_nomads_error(agent: InProcessAgent) -> None:
    agent.client.jobs.register_job({"Job": _source_job(agent, "/etc/hostname")})
    state = wait_until(lambda: (t := (_alloc(agent)["TaskStates"].get("app") or {})).get("Failed") and t, 15)
    assert [e["DisplayMessage"] for e in state["Events"]][-2:] == [
        "Template failed: template source path escapes alloc directory", "Task successfully killed"]


def test_an_adopted_task_keeps_re_rendering_after_an_agent_restart(running_agent: Any) -> None:
    import nomad

    c = nomad.Nomad(host="127.0.0.1", port=running_agent.nomad_port, timeout=10)
    kv = f"{running_agent.consul_addr}/v1/kv/app/mode"
    assert requests.put(kv, data="one", timeout=10).json() is True
    mode_only = CHANGE_MODES[:CHANGE_MODES.index("      template {", 10)]  # the env template alone
    c.jobs.register_job({"Job": c.jobs.parse(JOB % (WATCH.replace('"', '\\"'), mode_only), canonicalize=True)})

    def alloc() -> dict[str, Any] | None:
        stubs = [a for a in c.job.get_allocations("tpl") if a["ClientStatus"] == "running"]
        return c.allocation.get_allocation(stubs[0]["ID"]) if stubs else None

    def stdout(alloc_id: str) -> str:
        return requests.get(f"{running_agent.nomad_addr}/v1/client/fs/logs/{alloc_id}",
                            params={"task": "app", "type": "stdout", "plain": "true"}, timeout=10).text

    first = wait_until(alloc, 20)
    wait_until(lambda: stdout(first["ID"]) == "start one\n", 10)
    try:
        running_agent.stop(kill=True)  # the task outlives its agent; the next one adopts it
        running_agent.start()
        wait_until(lambda: (a := alloc()) and a["ID"] == first["ID"], 20)
        assert requests.put(kv, data="two", timeout=10).json() is True
        wait_until(lambda: stdout(first["ID"]).endswith("start two\n"), 20, what="the re-render after adoption")
    finally:
        c.job.deregister_job("tpl", purge=True)
        wait_until(lambda: not [a for a in c.job.get_allocations("tpl") if a["ClientStatus"] == "running"], 20)


SERVICE_JOB = """
job "tpl" {
  group "g" {
    network {
      port "http" {}
    }
    service {
      name = "echo"
      port = "http"
    }
    task "app" {
      driver = "raw_exec"
      config {
        command = "python3"
        args    = ["-m", "http.server", "${NOMAD_PORT_http}", "--bind", "127.0.0.1"]
      }
      template {
        data        = "{{ range service \\"echo\\" }}{{ .Name }} {{ .Address }}:{{ .Port }}{{ end }}"
        destination = "local/peers"
        change_mode = "noop"
      }
    }
  }
}
"""


def test_range_service_renders_the_catalog_and_follows_it(agent: InProcessAgent) -> None:
    agent.client.jobs.register_job({"Job": agent.client.jobs.parse(SERVICE_JOB)})
    alloc = wait_until(lambda: (a := _alloc(agent))["ClientStatus"] == "running" and a, 15)
    port = alloc["AllocatedResources"]["Shared"]["Ports"][0]["Value"]
    peers = Path(agent.ctx.config.alloc_root) / alloc["ID"] / "app" / "local" / "peers"
    # Rendered empty before the service registered, then again once it is in the catalog.
    wait_until(lambda: peers.read_text() == f"echo 127.0.0.1:{port}", 15, what="the re-render on registration")
    assert _alloc(agent)["TaskStates"]["app"]["Restarts"] == 0  # change_mode noop


def test_a_missing_key_after_an_agent_restart_does_not_hold_the_agent(running_agent: Any) -> None:
    import nomad

    c = nomad.Nomad(host="127.0.0.1", port=running_agent.nomad_port, timeout=10)
    kv = f"{running_agent.consul_addr}/v1/kv/app/mode"
    assert requests.put(kv, data="one", timeout=10).json() is True
    mode_only = CHANGE_MODES[:CHANGE_MODES.index("      template {", 10)]
    restartable = JOB.replace("attempts = 0", "attempts = 2")  # a task found dead may be restarted
    c.jobs.register_job({"Job": c.jobs.parse(restartable % (WATCH.replace('"', '\\"'), mode_only),
                                             canonicalize=True)})
    first = wait_until(lambda: next((a for a in c.job.get_allocations("tpl") if a["ClientStatus"] == "running"),
                                    None), 20)
    wait_until(lambda: _task_pids(running_agent), 10)
    try:
        assert requests.delete(kv, timeout=10).json() is True
        running_agent.stop(kill=True)
        for task_pid in _task_pids(running_agent):
            os.killpg(task_pid, 9)  # the task dies while the agent is down: the next agent restarts it
        running_agent.start()  # returns once the API answers: the missing key does not hold it
        missing = wait_until(lambda: next((e for e in (c.allocation.get_allocation(first["ID"])["TaskStates"]["app"]
                                                       ["Events"]) if e["Type"] == "Template"), None), 20)
        assert missing["DisplayMessage"] == "Missing: kv.block(app/mode)"
        assert requests.put(kv, data="two", timeout=10).json() is True
        wait_until(lambda: requests.get(f"{running_agent.nomad_addr}/v1/client/fs/logs/{first['ID']}", timeout=10,
                                        params={"task": "app", "type": "stdout", "plain": "true"}
                                        ).text.endswith("start two\n"), 20)
    finally:
        c.job.deregister_job("tpl", purge=True)


def _task_pids(agent: Any) -> list[int]:
    from nomadmesh.agent.state import State

    state = State(agent.data_dir / "state.db")
    try:
        return [h["Pid"] for a in state.values("alloc") for h in (a.get("_Handles") or {}).values() if h]
    finally:
        state.close()


READS = """
job "tpl" {
  group "g" {
    task "app" {
      driver = "raw_exec"
      config {
        command = "sleep"
        args    = ["300"]
      }
      template {
        data        = <<EOF
{{ range ls "app/cfg" }}{{ .Key }}={{ .Value }};{{ end }}
{{ range connect "api" }}{{ .Name }} {{ .Address }}:{{ .Port }}{{ end }}
{{ with nomadVar "nomad/jobs/tpl" }}{{ .password }}{{ end }}
EOF
        destination = "local/out"
        change_mode = "noop"
      }
    }
  }
}
"""


def test_ls_connect_and_nomad_var_render_and_follow_changes(agent: InProcessAgent) -> None:
    for key, value in (("app/cfg/a", "1"), ("app/cfg/b", "2"), ("app/cfg/sub/c", "3"), ("app/cfgx", "4")):
        _put_key(agent, key, value)
    agent.catalog.register_service({"ID": "api-sidecar", "Name": "api-sidecar-proxy", "Kind": "connect-proxy",
                                    "Address": "127.0.0.1", "Port": 21000, "Proxy": {"DestinationServiceName": "api"}})
    agent.client.jobs.register_job({"Job": agent.client.jobs.parse(READS)})
    # the variable does not exist yet: the task waits, saying so in consul-template's words
    missing = wait_until(lambda: next((e for e in (_alloc(agent)["TaskStates"].get("app") or {}).get("Events") or []
                                       if e["Type"] == "Template"), None), 10)
    assert missing["DisplayMessage"] == "Missing: nomad.var.block(nomad/jobs/tpl@default.global)"
    var = f"{agent.addr}/v1/var/nomad/jobs/tpl"
    assert requests.put(var, json={"Items": {"password": "s3cret"}}, timeout=10).status_code == 200
    alloc = wait_until(lambda: (a := _alloc(agent))["ClientStatus"] == "running" and a, 10)
    out = Path(agent.ctx.config.alloc_root) / alloc["ID"] / "app" / "local" / "out"
    # ls: the keys right under the prefix (not app/cfg/sub/c); "app/cfgx" starts with it, as Consul's list does
    assert out.read_text() == "a=1;b=2;x=4;\napi-sidecar-proxy 127.0.0.1:21000\ns3cret\n"
    assert requests.put(var, json={"Items": {"password": "rotated"}}, timeout=10).status_code == 200
    wait_until(lambda: out.read_text().endswith("\nrotated\n"), 10, what="the re-render on the variable's change")


SPLAY_TASK = """
    task "%s" {
      driver = "raw_exec"
      config {
        command = "python3"
        args    = ["-c", "%s"]
      }
      template {
        data          = "{{ keyOrDefault \\"app/sig\\" \\"0\\" }}"
        destination   = "local/sig"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        splay         = "%s"
      }
    }
"""


def test_splay_holds_a_tasks_change_mode_and_a_stop_ends_the_wait(agent: InProcessAgent) -> None:
    """Two tasks re-rendered by one change: the one with splay 0 is signalled at once; the one with
    a splay of an hour waits on its own (the other is not held behind it) and a stop ends its wait."""
    script = WATCH.replace('"', '\\"')
    tasks = SPLAY_TASK % ("fast", script, "0s") + SPLAY_TASK % ("slow", script, "1h")
    agent.client.jobs.register_job({"Job": agent.client.jobs.parse('job "tpl" {\n  group "g" {' + tasks + "  }\n}\n")})
    alloc = wait_until(lambda: (a := _alloc(agent))["ClientStatus"] == "running" and a, 10)

    def stdout(task: str) -> str:
        return requests.get(f"{agent.addr}/v1/client/fs/logs/{alloc['ID']}", timeout=10,
                            params={"task": task, "type": "stdout", "plain": "true"}).text

    wait_until(lambda: stdout("fast") == stdout("slow") == "start None\n", 10)
    _put_key(agent, "app/sig", "1")
    root = Path(agent.ctx.config.alloc_root) / alloc["ID"]
    wait_until(lambda: (root / "slow" / "local" / "sig").read_text() == "1", 10)
    wait_until(lambda: stdout("fast").endswith("hup\n"), 10, what="the signal without splay")
    assert stdout("slow") == "start None\n"  # re-rendered, its signal still waiting out its splay
    assert "Signaling" not in [e["Type"] for e in _alloc(agent)["TaskStates"]["slow"]["Events"]]
    agent.client.job.deregister_job("tpl")
    wait_until(lambda: _alloc(agent)["ClientStatus"] == "complete", 15, what="the stop, not held by the splay")
    assert stdout("slow") == "start None\n"
