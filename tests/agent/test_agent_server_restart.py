"""A dev agent SIGKILLed and started again on the same data dir keeps its KV, config entries,
intentions, services and checks, keeps its identity, and runs the checks again."""
from __future__ import annotations

import consul
from test_agent_consul_agent import Target

from support.agents import RunningAgent
from support.waiting import wait_until


def test_state_survives_sigkill_and_checks_run_again(running_agent: RunningAgent) -> None:
    target = Target()
    try:
        c = consul.Consul(host="127.0.0.1", port=running_agent.consul_port)
        node_id = c.agent.self()["Config"]["NodeID"]
        c.kv.put("keep/me", "please", flags=7)
        c.config.set("service-defaults", "keep", {"Kind": "service-defaults", "Name": "keep", "Protocol": "http"})
        c.connect.intentions.upsert("keep-web", "keep", action="deny")
        c.agent.service.register(
            "keep", service_id="keep-1", port=target.port,
            check=consul.Check.http(f"http://127.0.0.1:{target.port}/", interval="200ms"),
            connect={"sidecar_service": {}},
        )
        wait_until(lambda: c.agent.checks()["service:keep-1"]["Status"] == "passing")
        before_index = int(c.kv.get("keep/me")[0])
        old_pid = running_agent.pid

        running_agent.restart(kill=True)
        assert running_agent.pid != old_pid

        c = consul.Consul(host="127.0.0.1", port=running_agent.consul_port)
        assert c.agent.self()["Config"]["NodeID"] == node_id
        index, item = c.kv.get("keep/me")
        assert item["Value"] == b"please" and item["Flags"] == 7 and int(index) >= before_index
        assert c.config.get("service-defaults", "keep")["Protocol"] == "http"
        assert c.connect.intentions.check("keep-web", "keep") is False
        services = c.agent.services()
        assert {"keep-1", "keep-1-sidecar-proxy"} <= set(services)
        assert services["keep-1-sidecar-proxy"]["Proxy"]["LocalServicePort"] == target.port
        # the check is run by the new process: it follows the target's status change
        target.status = 503
        wait_until(lambda: c.agent.checks()["service:keep-1"]["Status"] == "critical")
        assert c.health.service("keep", passing=True)[1] == []
        # new writes continue the index instead of restarting it
        c.kv.put("keep/next", "x")
        assert c.kv.get("keep/next")[1]["ModifyIndex"] > item["ModifyIndex"]
    finally:
        target.close()
