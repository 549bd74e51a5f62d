"""A group service's tags and meta are interpolated with the allocation's variables before the agent
registers them, as Nomad's interpolateServices does: `${NOMAD_HOST_PORT_envoy_metrics}` in a service's
meta is how a sidecar's metrics listener (envoy_prometheus_bind_addr) becomes findable through
Prometheus' Consul service discovery (README, `--metrics-url`)."""
from __future__ import annotations

from typing import Any

from nomadmesh.agent.nomad import connect_hook
from nomadmesh.agent.nomad.services import registrations
from nomadmesh.render.ownership import CANARY_META_KEY
from support.nomad_jobs import rendered_sample_job


def invoice_alloc(canary: bool) -> dict[str, Any]:
    job = rendered_sample_job("invoice")
    tg = job["TaskGroups"][0]
    svc = tg["Services"][0]
    svc["Meta"] = {"envoy_metrics_port": "${NOMAD_HOST_PORT_envoy_metrics}", "alloc": "${NOMAD_SHORT_ALLOC_ID}",
                   "unknown": "${NOMAD_NOT_A_VARIABLE}"}
    svc["CanaryMeta"] = {**svc["Meta"], CANARY_META_KEY: "true"}
    svc["Tags"] = ["v1", "index-${NOMAD_ALLOC_INDEX}"]
    ports = [{"Label": p["Label"], "Value": 25000 + i, "To": -1}
             for i, p in enumerate(connect_hook.extra_ports(job, tg))]
    ports.append({"Label": "envoy_metrics", "Value": 27102, "To": 9102})
    return {"ID": "0badcafe-0000-0000-0000-000000000000", "Name": "invoice.invoice[3]", "Job": job,
            "TaskGroup": tg["Name"], "NetworkStatus": {"Address": "10.9.0.5"},
            "AllocatedResources": {"Shared": {"Ports": ports}}, "DeploymentStatus": {"Canary": canary}}


def test_meta_and_tags_are_interpolated_for_the_service_and_its_sidecar() -> None:
    for canary in (False, True):
        (reg,) = registrations(invoice_alloc(canary))
        assert reg["Meta"]["envoy_metrics_port"] == "27102"  # the host port mapped to 9102
        assert reg["Meta"]["alloc"] == "0badcafe"
        assert reg["Meta"]["unknown"] == "${NOMAD_NOT_A_VARIABLE}"  # left as written, as Nomad does
        assert reg["Meta"].get(CANARY_META_KEY) == ("true" if canary else None)
        assert reg["Tags"] == ["v1", "index-3"]
        assert reg["Connect"]["SidecarService"]["Tags"] == ["v1", "index-3"]
