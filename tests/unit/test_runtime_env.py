"""Pure tests of the task environment and runtime interpolation (client/taskenv semantics)."""
from __future__ import annotations

import pytest

from nomadmesh.agent.runtime.env import Port, TaskEnvInput, Upstream, alloc_index, clean_env_var, interpolate, task_env

ALLOC = "3f2a9c1e-7b4d-4e8a-9c0f-112233445566"


def _input(**over) -> TaskEnvInput:
    base = {
        "alloc_id": ALLOC, "alloc_name": "web.api[2]", "group": "api", "task": "server", "job_id": "web",
        "job_name": "web", "alloc_dir": "/d/allocs/x/alloc", "task_dir": "/d/allocs/x/server/local",
        "secrets_dir": "/d/allocs/x/server/secrets", "datacenter": "dc1", "region": "global", "cpu": 250,
        "memory_mb": 128,
    }
    base.update(over)
    return TaskEnvInput(**base)


def test_identity_dirs_and_limits() -> None:
    env = task_env(_input())
    assert env["NOMAD_ALLOC_ID"] == ALLOC
    assert env["NOMAD_SHORT_ALLOC_ID"] == "3f2a9c1e"
    assert env["NOMAD_ALLOC_NAME"] == "web.api[2]"
    assert env["NOMAD_ALLOC_INDEX"] == "2"
    assert env["NOMAD_GROUP_NAME"] == "api"
    assert env["NOMAD_TASK_NAME"] == "server"
    assert (env["NOMAD_JOB_ID"], env["NOMAD_JOB_NAME"]) == ("web", "web")
    assert (env["NOMAD_NAMESPACE"], env["NOMAD_REGION"], env["NOMAD_DC"]) == ("default", "global", "dc1")
    assert env["NOMAD_ALLOC_DIR"] == "/d/allocs/x/alloc"
    assert env["NOMAD_TASK_DIR"] == "/d/allocs/x/server/local"
    assert env["NOMAD_SECRETS_DIR"] == "/d/allocs/x/server/secrets"
    assert (env["NOMAD_CPU_LIMIT"], env["NOMAD_MEMORY_LIMIT"]) == ("250", "128")


def test_port_with_to_maps_inner_port_and_host_addresses() -> None:
    env = task_env(_input(ports=(Port("http", 23456, to=8080, host_ip="10.0.0.5"),)))
    assert env["NOMAD_PORT_http"] == "8080"
    assert env["NOMAD_ALLOC_PORT_http"] == "8080"
    assert env["NOMAD_HOST_PORT_http"] == "23456"
    assert env["NOMAD_IP_http"] == "10.0.0.5"
    assert env["NOMAD_HOST_IP_http"] == "10.0.0.5"
    assert env["NOMAD_ADDR_http"] == "10.0.0.5:23456"
    assert env["NOMAD_HOST_ADDR_http"] == "10.0.0.5:23456"


@pytest.mark.parametrize("to", [0, -1])
def test_port_without_to_uses_host_port(to: int) -> None:
    env = task_env(_input(ports=(Port("db", 9000, to=to),)))
    assert env["NOMAD_PORT_db"] == env["NOMAD_HOST_PORT_db"] == "9000"
    assert env["NOMAD_ADDR_db"] == "127.0.0.1:9000"


def test_ipv6_addresses_are_bracketed() -> None:
    env = task_env(_input(ports=(Port("h", 80, host_ip="::1"),)))
    assert env["NOMAD_ADDR_h"] == "[::1]:80"


def test_upstreams_raw_and_cleaned_names_always_loopback() -> None:
    env = task_env(_input(upstreams=(Upstream("count-api", 8080), Upstream("tax", 9191))))
    for name in ("count-api", "count_api"):
        assert env[f"NOMAD_UPSTREAM_ADDR_{name}"] == "127.0.0.1:8080"
        assert env[f"NOMAD_UPSTREAM_IP_{name}"] == "127.0.0.1"
        assert env[f"NOMAD_UPSTREAM_PORT_{name}"] == "8080"
    assert env["NOMAD_UPSTREAM_ADDR_tax"] == "127.0.0.1:9191"


def test_task_env_block_overrides_and_interpolates() -> None:
    env = task_env(
        _input(ports=(Port("http", 23456, to=8080),),
               env={"LISTEN": "0.0.0.0:${NOMAD_PORT_http}", "NOMAD_DC": "mine", "KEEP": "${UNKNOWN}"}),
        host_env={"PATH": "/usr/bin", "NOMAD_TASK_NAME": "host-must-not-win"},
    )
    assert env["LISTEN"] == "0.0.0.0:8080"
    assert env["NOMAD_DC"] == "mine"  # the task's env block wins over Nomad's own variables
    assert env["KEEP"] == "${UNKNOWN}"
    assert env["PATH"] == "/usr/bin"
    assert env["NOMAD_TASK_NAME"] == "server"  # the host never overrides Nomad's variables


def test_meta_keys_raw_and_upper_case() -> None:
    env = task_env(_input(meta={"version": "v3", "owner-team": "core"}))
    assert env["NOMAD_META_version"] == env["NOMAD_META_VERSION"] == "v3"
    assert env["NOMAD_META_owner_team"] == "core"  # cleaned like Nomad (#2405)


def test_interpolate_forms() -> None:
    env = {"NOMAD_PORT_http": "8080", "HOME": "/root"}
    attrs = {"node.unique.id": "n-1", "attr.kernel.name": "linux"}
    assert interpolate("--port=${NOMAD_PORT_http}", env) == "--port=8080"
    assert interpolate("${env.HOME}/x", env) == "/root/x"
    assert interpolate('${env["HOME"]}', env) == "/root"
    assert interpolate("${node.unique.id}-${attr.kernel.name}", env, attrs) == "n-1-linux"
    assert interpolate("${NOMAD_NOPE} and ${meta.x} $HOME", env, attrs) == "${NOMAD_NOPE} and ${meta.x} $HOME"


def test_helpers() -> None:
    assert clean_env_var("a-b.c 9") == "a_b.c_9"
    assert clean_env_var("9lives") == "_lives"
    assert alloc_index("job.group[12]") == 12
    assert alloc_index("weird") == 0
