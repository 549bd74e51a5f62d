"""Rendering the sample services: the exact blocks, determinism, HCL ↔ model ↔ JSON round trips."""
from __future__ import annotations

import json

import pytest

from nomadmesh.definitions.model import Check, Project, Resources, Restart, Run, Service, Spec, Update, Upstream
from nomadmesh.errors import RenderError
from nomadmesh.jobspec import parse_hcl
from nomadmesh.render import render, render_hcl
from nomadmesh.render.ownership import definition_hash, package_version
from support.paths import SERVICES

HEALTH = Check(type="http", name="health", path="/health", interval="2s", timeout="1s", expose=True)


def sample(name: str, port: int, upstream: tuple[str, int] | None, **run: object) -> Service:
    """The seed's three services as load_spec builds them from services/<name>/service.json."""
    return Service(
        name=name,
        port=port,
        source=f"services/{name}/service.json",
        tags=(name,),
        upstreams=(Upstream(*upstream),) if upstream else (),
        checks=(HEALTH,),
        run=Run(
            driver="raw_exec",
            command="python3",
            args=("../app.py", name),
            work_dir=f"/srv/services/{name}",
            **run,  # type: ignore[arg-type]
        ),
    )


SPEC = Spec(
    project=Project(),
    services=(
        sample("invoice", 5001, ("tax", 6002)),
        sample("order", 5000, ("invoice", 6001), env=(("BIND_ADDR", "0.0.0.0"),), publish=0),
        sample("tax", 5002, None),
    ),
)

# A second shape: not in Connect, docker, a static host port, custom policies and project.
WEB = Service(
    name="web",
    port=8080,
    source="services/web/service.json",
    tags=("edge", "v2"),
    meta=(("owner", "team-a"), ("tier", "front")),
    connect=False,
    checks=(Check(type="tcp", name="alive", interval="5s", timeout="1s"),),
    run=Run(
        driver="docker",
        image="nginx:1.27",
        env=(("MODE", "prod"),),
        count=3,
        resources=Resources(cpu=250, memory=256),
        publish=8081,
        update=Update(max_parallel=2, canary=1, auto_revert=True, auto_promote=True, min_healthy_time="30s"),
        restart=Restart(attempts=5, interval="10m", delay="5s", mode="delay"),
    ),
)
PROJECT = Project(datacenters=("dc1", "dc2"), region="eu", namespace="shop")


def test_render_names_one_file_per_service() -> None:
    assert list(render(SPEC)) == ["invoice.nomad.hcl", "order.nomad.hcl", "tax.nomad.hcl"]
    assert list(render(SPEC, "json")) == ["invoice.nomad.json", "order.nomad.json", "tax.nomad.json"]


def test_order_job_has_the_expected_blocks() -> None:
    hcl = render(SPEC)["order.nomad.hcl"]
    digest = definition_hash(SPEC.service("order"), SPEC.project)
    expected_blocks = [
        'job "order" {\n  datacenters = ["dc1"]\n  region      = "global"\n'
        '  namespace   = "default"\n  type        = "service"\n',
        '  meta {\n    nomadmesh_managed = "true"\n'
        f'    nomadmesh_hash    = "{digest}"\n'
        f'    nomadmesh_version = "{package_version()}"\n'
        '    nomadmesh_project = "default"\n  }\n',
        '  group "order" {\n    count = 1\n',
        '    network {\n      mode = "bridge"\n\n      port "http" {\n        to = 5000\n      }\n    }\n',
        '    service {\n      name = "order"\n      port = "5000"\n      tags = ["order"]\n',
        "      connect {\n        sidecar_service {\n          proxy {\n            upstreams {\n"
        '              destination_name = "invoice"\n              local_bind_port  = 6001\n'
        "            }\n          }\n        }\n      }\n",
        '      check {\n        name     = "health"\n        type     = "http"\n'
        '        path     = "/health"\n        interval = "2s"\n        timeout  = "1s"\n'
        "        expose   = true\n      }\n",
        '    update {\n      max_parallel      = 1\n      health_check      = "checks"\n'
        '      min_healthy_time  = "10s"\n      healthy_deadline  = "5m"\n'
        '      progress_deadline = "10m"\n      auto_revert       = false\n      canary            = 0\n    }\n',
        '    restart {\n      attempts = 2\n      interval = "30m"\n      delay    = "15s"\n'
        '      mode     = "fail"\n    }\n',
        '    task "order" {\n      driver = "raw_exec"\n\n      config {\n'
        '        command  = "python3"\n        args     = ["../app.py", "order"]\n'
        '        work_dir = "/srv/services/order"\n      }\n',
        '      env {\n        BIND_ADDR = "0.0.0.0"\n        PORT      = "5000"\n      }\n',
        "      resources {\n        cpu    = 100\n        memory = 128\n      }\n    }\n  }\n}\n",
    ]
    for block in expected_blocks:
        assert block in hcl
    assert hcl.endswith("}\n") and not hcl.endswith("\n\n")
    assert "\t" not in hcl


def test_tax_has_an_empty_sidecar_and_no_port_mapping() -> None:
    hcl = render(SPEC)["tax.nomad.hcl"]
    assert "      connect {\n        sidecar_service {}\n      }\n" in hcl
    assert '    network {\n      mode = "bridge"\n    }\n' in hcl
    assert 'port "http"' not in hcl


def test_plain_docker_service_uses_the_port_label() -> None:
    hcl = render_hcl(WEB, PROJECT)
    assert 'datacenters = ["dc1", "dc2"]\n  region      = "eu"\n  namespace   = "shop"' in hcl
    assert '      port "http" {\n        to     = 8080\n        static = 8081\n      }\n' in hcl
    assert '      name = "web"\n      port = "http"\n      tags = ["edge", "v2"]\n' in hcl
    assert '      meta {\n        owner = "team-a"\n        tier  = "front"\n      }\n' in hcl
    assert "connect" not in hcl and "expose" not in hcl
    assert '      config {\n        image = "nginx:1.27"\n        ports = ["http"]\n      }\n' in hcl
    assert "    count = 3\n" in hcl


def test_rendering_is_byte_identical_every_time() -> None:
    first = render(SPEC)
    assert render(SPEC) == first
    assert render(SPEC, "json") == render(SPEC, "json")
    assert render_hcl(WEB, PROJECT) == render_hcl(WEB, PROJECT)


def test_only_named_services_are_rendered() -> None:
    assert list(render(SPEC, names=["tax", "order"])) == ["order.nomad.hcl", "tax.nomad.hcl"]
    with pytest.raises(RenderError, match=r"unknown service 'ordr' \(did you mean 'order'\?\)"):
        render(SPEC, names=["ordr"])


def test_unknown_format_is_an_error() -> None:
    with pytest.raises(RenderError, match="unknown format 'yaml'"):
        render(SPEC, "yaml")  # type: ignore[arg-type]


def job_dict(service: Service, project: Project) -> dict:
    """The Job the rendered HCL is, read by the jobspec parser the agent and `render --format json` use."""
    return parse_hcl(render_hcl(service, project))


def test_json_file_is_the_api_job_sorted_and_indented() -> None:
    text = render(SPEC, "json")["invoice.nomad.json"]
    doc = json.loads(text)
    assert doc == {"Job": job_dict(SPEC.service("invoice"), SPEC.project)}
    assert text == json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_job_dict_states_the_model() -> None:
    """Every field of the model lands in the Go-named API field, durations in nanoseconds."""
    job = job_dict(WEB, PROJECT)
    assert (job["ID"], job["Name"], job["Type"]) == ("web", "web", "service")
    assert (job["Datacenters"], job["Region"], job["Namespace"]) == (["dc1", "dc2"], "eu", "shop")
    assert job["Meta"] == {
        "nomadmesh_managed": "true",
        "nomadmesh_hash": definition_hash(WEB, PROJECT),
        "nomadmesh_version": package_version(),
        "nomadmesh_project": PROJECT.name,
    }
    (group,) = job["TaskGroups"]
    assert (group["Name"], group["Count"]) == ("web", 3)
    assert group["Networks"] == [
        {"Mode": "bridge", "ReservedPorts": [{"Label": "http", "Value": 8081, "To": 8080, "HostNetwork": ""}]}
    ]
    (svc,) = group["Services"]
    assert svc == {
        "Name": "web",
        "PortLabel": "http",
        "Tags": ["edge", "v2"],
        "Meta": {"owner": "team-a", "tier": "front"},
        # update.canary = 1: a canary registers the meta marked, so `release` can tell it from the stable ones
        "CanaryMeta": {"owner": "team-a", "tier": "front", "nomadmesh_canary": "true"},
        "Checks": [{"Name": "alive", "Type": "tcp", "Interval": 5 * 10**9, "Timeout": 10**9}],
    }
    (task,) = group["Tasks"]
    assert task == {
        "Name": "web",
        "Driver": "docker",
        "Config": {"image": "nginx:1.27", "ports": ["http"]},
        "Env": {"MODE": "prod", "PORT": "8080"},
        "Resources": {"CPU": 250, "MemoryMB": 256},
    }
    assert group["Update"] == {
        "MaxParallel": 2,
        "HealthCheck": "checks",
        "MinHealthyTime": 30 * 10**9,
        "HealthyDeadline": 300 * 10**9,
        "ProgressDeadline": 600 * 10**9,
        "AutoRevert": True,
        "Canary": 1,
        "AutoPromote": True,
    }
    assert group["RestartPolicy"] == {"Attempts": 5, "Interval": 600 * 10**9, "Delay": 5 * 10**9, "Mode": "delay"}


def test_job_dict_connect_service() -> None:
    (group,) = job_dict(SPEC.service("order"), SPEC.project)["TaskGroups"]
    (svc,) = group["Services"]
    assert svc["PortLabel"] == "5000"
    assert svc["Connect"] == {
        "SidecarService": {"Proxy": {"Upstreams": [{"DestinationName": "invoice", "LocalBindPort": 6001}]}}
    }
    assert svc["Checks"] == [
        {"Name": "health", "Type": "http", "Path": "/health", "Interval": 2 * 10**9, "Timeout": 10**9, "Expose": True}
    ]
    assert group["Networks"] == [
        {"Mode": "bridge", "DynamicPorts": [{"Label": "http", "Value": 0, "To": 5000, "HostNetwork": ""}]}
    ]
    tax = job_dict(SPEC.service("tax"), SPEC.project)["TaskGroups"][0]
    assert tax["Services"][0]["Connect"] == {"SidecarService": {}}
    assert tax["Networks"] == [{"Mode": "bridge"}]


def test_upstream_extras_round_trip() -> None:
    svc = Service(
        name="api",
        port=9000,
        source="x",
        upstreams=(Upstream("db", 7000, "127.0.0.2", "dc2"), Upstream("cache", 7001)),
        run=Run(command="/bin/api"),
    )
    job = job_dict(svc, Project())
    ups = job["TaskGroups"][0]["Services"][0]["Connect"]["SidecarService"]["Proxy"]["Upstreams"]
    assert ups == [
        {"DestinationName": "db", "LocalBindPort": 7000, "LocalBindAddress": "127.0.0.2", "Datacenter": "dc2"},
        {"DestinationName": "cache", "LocalBindPort": 7001},
    ]


def test_hash_follows_the_definition_not_its_location() -> None:
    order = SPEC.service("order")
    moved = Service(**{**order.__dict__, "source": "elsewhere/service.json"})
    changed = Service(**{**order.__dict__, "port": 5005})
    assert definition_hash(moved, SPEC.project) == definition_hash(order, SPEC.project)
    assert definition_hash(changed, SPEC.project) != definition_hash(order, SPEC.project)
    assert definition_hash(order, PROJECT) != definition_hash(order, SPEC.project)


def test_sample_service_files_render_when_the_loader_is_present() -> None:
    """The real services/ folder through load_spec, once nomadmesh.definitions provides it."""
    spec_mod = pytest.importorskip("nomadmesh.definitions")
    if not hasattr(spec_mod, "load_spec"):
        pytest.skip("nomadmesh.definitions.load_spec not written yet")

    services = SERVICES
    spec = spec_mod.load_spec(services)
    rendered = render(spec)
    assert sorted(rendered) == ["ingress.nomad.hcl", "invoice.nomad.hcl", "order.nomad.hcl", "tax.nomad.hcl"]
    order = parse_hcl(rendered["order.nomad.hcl"], {"project_dir": spec.root})["TaskGroups"][0]
    assert order["Services"][0]["Connect"]["SidecarService"]["Proxy"]["Upstreams"] == [
        {"DestinationName": "invoice", "LocalBindPort": 6001}
    ]
    assert order["Tasks"][0]["Env"]["PORT"] == "5000"


def test_canaries_register_a_marked_canary_meta_and_other_jobs_none() -> None:
    from dataclasses import replace

    def service_of(service: Service) -> dict[str, object]:
        (group,) = job_dict(service, PROJECT)["TaskGroups"]
        (svc,) = group["Services"]
        return dict(svc)

    declared = replace(WEB, run=replace(WEB.run, canary_meta=(("track", "canary"),)))
    assert service_of(declared)["CanaryMeta"] == {"track": "canary", "nomadmesh_canary": "true"}
    no_canary = replace(WEB, run=replace(WEB.run, update=Update(canary=0)))
    assert "CanaryMeta" not in service_of(no_canary)
    kept = replace(no_canary, run=replace(no_canary.run, canary_meta=(("track", "canary"),)))
    assert service_of(kept)["CanaryMeta"] == {"track": "canary"}
