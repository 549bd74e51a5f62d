"""The one local node as Nomad describes it (Node and NodeListStub), and what it can run."""
from __future__ import annotations

import os
import platform
from typing import Any

NOMAD_VERSION = "1.9.7"  # the Nomad API version the dev agent imitates
DRIVERS = ("raw_exec", "exec")  # what this node really runs; anything else is "missing drivers"
# What operators set on a node (nomad/node_ops.py) rather than the client's fingerprint.
OPERATOR_SET = ("SchedulingEligibility", "Drain", "DrainStrategy", "LastDrain", "Events")


def _driver(description: str = "Healthy") -> dict[str, Any]:
    return {"Attributes": None, "Detected": True, "Healthy": True, "HealthDescription": description,
            "UpdateTime": 0}


def node_document(node_id: str, name: str, datacenter: str, http_addr: str, bridge_reason: str | None,
                  index: int, host_volumes: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    attributes = {
        "kernel.name": platform.system().lower(),
        "kernel.version": platform.release(),
        "cpu.arch": platform.machine(),
        "os.name": platform.system().lower(),
        "unique.hostname": name,
        "nomad.version": NOMAD_VERSION,
        "driver.raw_exec": "1",
        "driver.exec": "1",
        "nomad.advertise.address": http_addr,
    }
    if bridge_reason is None:
        attributes["plugins.cni.version.bridge"] = "1"
    return {
        "ID": node_id,
        "Name": name,
        "Datacenter": datacenter,
        "NodeClass": "",
        "NodePool": "default",
        "HTTPAddr": http_addr,
        "TLSEnabled": False,
        "Attributes": attributes,
        "Meta": {"connect.sidecar_image": "envoy", "connect.log_level": "info",
                 "connect.proxy_concurrency": "1"},
        "Drivers": {d: _driver() for d in DRIVERS},
        "NodeResources": {
            "Cpu": {"CpuShares": 1000 * (os.cpu_count() or 1), "TotalCpuCores": os.cpu_count() or 1},
            "Memory": {"MemoryMB": _memory_mb()},
            "Disk": {"DiskMB": 10240},
            "Networks": [{"Mode": "host", "Device": "lo", "IP": "127.0.0.1", "CIDR": "127.0.0.1/32"}],
            "MinDynamicPort": 20000,
            "MaxDynamicPort": 32000,
        },
        "Status": "ready",
        "StatusDescription": "",
        "SchedulingEligibility": "eligible",
        "Drain": False,
        "DrainStrategy": None,
        "LastDrain": None,
        "Events": None,
        "HostVolumes": dict(host_volumes) if host_volumes else None,
        "_BridgeUnavailable": bridge_reason,
        "CreateIndex": index,
        "ModifyIndex": index,
    }


def node_stub(node: dict[str, Any]) -> dict[str, Any]:
    return {
        "ID": node["ID"], "Name": node["Name"], "Datacenter": node["Datacenter"],
        "NodeClass": node["NodeClass"], "NodePool": node["NodePool"], "Version": NOMAD_VERSION,
        "Address": "127.0.0.1", "Drain": bool(node.get("Drain")),
        "SchedulingEligibility": node["SchedulingEligibility"], "LastDrain": node.get("LastDrain"),
        "Status": node["Status"], "StatusDescription": "", "Drivers": node["Drivers"],
        "Attributes": {"os.name": node["Attributes"]["os.name"], "nomad.version": NOMAD_VERSION},
        "CreateIndex": node["CreateIndex"], "ModifyIndex": node["ModifyIndex"],
    }


def _memory_mb() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 4096
