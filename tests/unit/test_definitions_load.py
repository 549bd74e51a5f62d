"""load_spec on real folders: the sample services, fixture folders, the project file, file errors."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from nomadmesh.definitions import find_service_files, load_spec
from nomadmesh.definitions.model import (
    Check,
    IngressListener,
    IngressService,
    Project,
    Resources,
    Restart,
    Run,
    Service,
    Update,
    Upstream,
)
from nomadmesh.errors import Problem, SpecError
from support.paths import REPO, SPEC_FIXTURES as FIXTURES
from support.spec_builders import definition, problems, write_services

SAMPLES = REPO / "services"


# The samples shorten Nomad's update timings so a demo deploy is healthy in seconds.
SAMPLE_UPDATE = Update(min_healthy_time="1s", healthy_deadline="1m", progress_deadline="2m")


def http_check(name: str) -> Check:
    return Check("http", f"{name}-http", "2s", "1s", "/health", expose=True)


# invoice ships ready for `nomadmesh release`: http, one canary with auto_revert, and 1 s between its
# deregistration and its stop.
RELEASABLE = {"update": Update(min_healthy_time="1s", healthy_deadline="1m", progress_deadline="2m",
                               canary=1, auto_revert=True),
              "blocks": (("group", '{"shutdown_delay":"1s"}'),)}


def sample(name: str, port: int, upstreams: tuple[Upstream, ...], protocol: str | None = None,
           **run: object) -> Service:
    run = {"update": SAMPLE_UPDATE, **run}
    return Service(
        name=name,
        port=port,
        source=str(SAMPLES / name / "service.json"),
        tags=(name,),
        connect=True,
        upstreams=upstreams,
        checks=(http_check(name),),
        protocol=protocol,
        run=Run(command="python3", args=("../app.py", name), work_dir=str(SAMPLES / name),  # type: ignore[arg-type]
                **run),
    )


def test_sample_services_load_into_the_expected_model() -> None:
    spec = load_spec(SAMPLES)
    # The apps bind 127.0.0.1 and publish nothing: order is reached through the ingress gateway.
    gateway = Service(
        name="ingress", port=8080, source=str(SAMPLES / "ingress" / "service.json"), connect=False,
        upstreams=(Upstream("order", 8080),), run=Run(driver="", publish=0, update=SAMPLE_UPDATE),
        ingress=(IngressListener(8080, "tcp", (IngressService("order"),)),),
    )
    assert spec.services == (
        gateway,
        sample("invoice", 5001, (Upstream("tax", 6002),), "http", **RELEASABLE),
        sample("order", 5000, (Upstream("invoice", 6001),)),
        sample("tax", 5002, ()),
    )
    # The repository has no nomadmesh.json: the project is named after its folder.
    assert spec.project == Project()  # no nomadmesh.json: the project named "default"
    assert spec.warnings == ()


def test_find_service_files_skips_files_and_folders_without_a_definition(tmp_path: Path) -> None:
    services = write_services(tmp_path, {"b": definition("b", 1), "a": definition("a", 2)})
    (services / "empty").mkdir()
    (services / "app.py").write_text("")
    assert find_service_files(services) == [services / "a" / "service.json", services / "b" / "service.json"]


def test_project_file_and_every_nomad_field() -> None:
    spec = load_spec(FIXTURES / "project" / "services")
    assert spec.project == Project(
        datacenters=("zone1", "zone2"), region="eu", namespace="shop",
        external_services=("billing", "payments"), source=str(FIXTURES / "project" / "nomadmesh.json"),
        name="default",  # no `name` in the file
    )  # fmt: skip
    web_file = FIXTURES / "project" / "services" / "web" / "service.json"
    assert spec.service("web") == Service(
        name="web",
        port=8080,
        source=str(web_file),
        tags=("public",),
        meta=(("team", "storefront"),),
        upstreams=(Upstream("db", 9001), Upstream("payments", 9002, "127.0.0.2", "zone2")),
        checks=(Check("http", "ready", "10s", "2s", "/ready?full=1", expose=True),),
        run=Run(
            driver="docker", image="example/web:1.2", env=(("LOG_LEVEL", "info"),), count=3,
            resources=Resources(250, 256), publish=8080,
            update=Update(max_parallel=2, canary=1, auto_revert=True, min_healthy_time="30s", healthy_deadline="2m"),
            restart=Restart(attempts=5, interval="10m", delay="5s", mode="delay"),
        ),
    )  # fmt: skip
    db = spec.service("db")
    assert (db.connect, db.upstreams, db.run.driver, db.run.args, db.run.work_dir, db.checks) == (
        False, (), "exec", ("--listen", "127.0.0.1:5432"), "/srv/db", (Check("tcp", "db-tcp", "5s", "2s"),)
    )  # fmt: skip


def test_consul_checks_and_keys() -> None:
    spec = load_spec(FIXTURES / "consul-checks" / "services")
    api = spec.service("api")
    assert api.checks == (
        Check("http", "api-http", "3s", "1s", "/health", expose=True),
        Check("http", "api-http-2", "10s", "2s", "/live", expose=True),
        Check("http", "api-http-3", "10s", "2s", "/metrics", expose=True),
    )
    # cache is not in Connect, so Consul reaches its port and a tcp check is fine
    assert spec.service("cache").checks == (Check("tcp", "listening", "10s", "2s"),)
    assert (api.address, api.enable_tag_override) == ("10.0.0.5", True)
    assert api.run.work_dir == str(FIXTURES / "consul-checks" / "services" / "api" / "bin")
    source = FIXTURES / "consul-checks" / "services" / "api" / "service.json"
    assert spec.warnings == (
        f"{source}: service.id: is ignored: Nomad assigns service IDs itself",
        f"{source}: service.connect.sidecar_service.port: is ignored: Nomad gives the sidecar a dynamic port",
    )


def test_relative_services_dir_keeps_relative_paths_in_messages(tmp_path: Path) -> None:
    write_services(tmp_path, {"a": '{"service": '})
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(SpecError) as e:
            load_spec(Path("services"))
    finally:
        os.chdir(cwd)
    assert [str(p) for p in e.value.problems] == [
        "services/a/service.json: invalid JSON at line 1, column 13: Expecting value"
    ]


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("")
    for folder, message in [
        ("empty", "has no service definitions (<name>/service.json)"),
        ("missing", "does not exist; expected a folder of <name>/service.json"),
        ("file", "is not a folder; expected a folder of <name>/service.json"),
    ]:
        with pytest.raises(SpecError) as e:
            load_spec(tmp_path / folder)
        assert e.value.problems == [Problem(str(tmp_path / folder), "", message)]


@pytest.mark.parametrize(
    "raw, message",
    [
        (b'{"service": {"name": "a",\n  "port": 1 "x": 2}}',
         "invalid JSON at line 2, column 13: Expecting ',' delimiter"),
        (b"", "invalid JSON at line 1, column 1: Expecting value"),
        (b'{"service": NaN}', "invalid JSON: NaN is not valid JSON"),
        (b'{"service": "\xff"}', "is not UTF-8 text (byte 0xff at offset 13)"),
        (b"[" * 100_000, "invalid JSON: nested too deeply"),
    ],
)
def test_unreadable_json(tmp_path: Path, raw: bytes, message: str) -> None:
    services = write_services(tmp_path, {"a": ""})
    (services / "a" / "service.json").write_bytes(raw)
    assert problems(tmp_path, {}) == [("a", "", message)]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    services = write_services(tmp_path, {"a": ""})
    utf8_bom = b"\xef\xbb\xbf"
    body = b'{"service": {"name": "a", "port": 1}, "nomad": {"command": "x"}}'
    (services / "a" / "service.json").write_bytes(utf8_bom + body)
    assert load_spec(services).names == ("a",)


def test_project_file_problems(tmp_path: Path) -> None:
    write_services(tmp_path, {"a": definition("a", 5000)})
    (tmp_path / "nomadmesh.json").write_text(
        '{"datacenters": [], "region": "eu west", "namespace": 3, "external_services": ["Bad"], "datacenter": "x"}'
    )
    here = tmp_path.name  # problems() names a file by its folder
    assert problems(tmp_path, {}) == [
        (here, "datacenter", "unknown key; did you mean 'datacenters'?"),
        (here, "datacenters", "must list at least one datacenter"),
        (here, "namespace", "must be a string, got number 3"),
        (here, "region", "'eu west' is not a region name: letters, digits, '-' and '_'"),
        (here, "external_services[0]", "'Bad' is not a valid name: must be lowercase letters, digits and dashes, "
         "start with a letter, not end with a dash, at most 63 characters"),
    ]  # fmt: skip


def test_explicit_project_file_must_exist(tmp_path: Path) -> None:
    services = write_services(tmp_path, {"a": definition("a", 5000)})
    with pytest.raises(SpecError) as e:
        load_spec(services, tmp_path / "nope.json")
    assert len(e.value.problems) == 1
    assert str(e.value.problems[0]).startswith(f"{tmp_path / 'nope.json'}: cannot be read: No such file")


def test_copied_samples_resolve_work_dir_against_their_new_place(tmp_path: Path) -> None:
    shutil.copytree(SAMPLES, tmp_path / "services")
    spec = load_spec(tmp_path / "services")
    assert spec.service("order").run.work_dir == str((tmp_path / "services" / "order").resolve())
