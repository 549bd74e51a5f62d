"""HCL2 jobspec → Job JSON: HashiCorp's Connect example, every supported block, escapes, errors."""
from __future__ import annotations

import json

import pytest

from nomadmesh.jobspec import JobspecError, parse_hcl
from support.paths import JOBSPEC_FIXTURES as FIXTURES


def test_countdash_from_hashicorp_docs_parses_to_exact_job_json():
    job = parse_hcl((FIXTURES / "countdash.nomad.hcl").read_text())
    assert job == {
        "ID": "countdash",
        "Name": "countdash",
        "Datacenters": ["dc1"],
        "TaskGroups": [
            {
                "Name": "api",
                "Networks": [{"Mode": "bridge"}],
                "Services": [{"Name": "count-api", "PortLabel": "9001",
                              "Connect": {"SidecarService": {}}}],
                "Tasks": [{"Name": "web", "Driver": "docker",
                           "Config": {"image": "hashicorpdev/counter-api:v3"}}],
            },
            {
                "Name": "dashboard",
                "Networks": [{"Mode": "bridge", "ReservedPorts": [
                    {"Label": "http", "Value": 9002, "To": 9002, "HostNetwork": ""}]}],
                "Services": [{
                    "Name": "count-dashboard", "PortLabel": "http",
                    "Connect": {"SidecarService": {"Proxy": {"Upstreams": [
                        {"DestinationName": "count-api", "LocalBindPort": 8080}]}}},
                }],
                "Tasks": [{
                    "Name": "dashboard", "Driver": "docker",
                    # Nomad runtime interpolation is left for the client to resolve.
                    "Env": {"COUNTING_SERVICE_URL": "http://${NOMAD_UPSTREAM_ADDR_count_api}"},
                    "Config": {"image": "hashicorpdev/counter-dashboard:v3"},
                }],
            },
        ],
    }


def test_every_supported_block_maps_to_its_api_field():
    job = parse_hcl((FIXTURES / "full.nomad.hcl").read_text())
    assert (job["ID"], job["Type"], job["Priority"], job["Region"], job["Namespace"]) == (
        "full", "service", 70, "global", "default")
    assert job["Datacenters"] == ["dc1", "dc2"]
    assert job["Meta"] == {"owner": "nomadmesh"}
    assert job["Constraints"] == [{"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="}]
    assert job["Update"] == {"MaxParallel": 2, "MinHealthyTime": 5_000_000_000,
                             "HealthyDeadline": 60_000_000_000, "AutoRevert": True}

    (group,) = job["TaskGroups"]
    assert group["Count"] == 1 and group["Meta"] == {"team": "mesh", "tier": "front"}
    assert group["Networks"] == [{
        "Mode": "bridge",
        "DynamicPorts": [{"Label": "http", "Value": 0, "To": 8080, "HostNetwork": ""}],
        "ReservedPorts": [{"Label": "admin", "Value": 9999, "To": 0, "HostNetwork": "default"}],
    }]
    assert group["RestartPolicy"] == {"Attempts": 5, "Interval": 600_000_000_000, "Delay": 10_000_000_000,
                                      "Mode": "delay"}
    assert group["ReschedulePolicy"] == {"Attempts": 3, "Interval": 7_200_000_000_000, "Unlimited": False}
    assert group["EphemeralDisk"] == {"SizeMB": 150}

    (service,) = group["Services"]
    assert service["Name"] == "web-v3"  # local built from a variable
    assert service["Tags"] == ["a", "b"] and service["Meta"] == {"version": "v3"}
    assert service["Checks"] == [{
        "Name": "alive", "Type": "http", "Path": "/health", "Method": "GET", "Protocol": "http",
        "Interval": 10_000_000_000, "Timeout": 2_000_000_000, "Expose": True, "Header": {"X-Token": ["abc"]},
    }]
    sidecar = service["Connect"]["SidecarService"]
    assert sidecar["Port"] == "21000" and sidecar["DisableDefaultTCPCheck"] is True
    assert sidecar["Proxy"] == {
        "LocalServiceAddress": "127.0.0.1", "LocalServicePort": 8080,
        "Upstreams": [{"DestinationName": "db", "LocalBindPort": 5432, "LocalBindAddress": "127.0.0.1",
                       "Datacenter": "dc2", "DestinationNamespace": "default", "MeshGateway": {"Mode": "local"},
                       "Config": {"connect_timeout_ms": 500}}],
        "Expose": {"Paths": [{"Path": "/metrics", "Protocol": "http", "LocalPathPort": 9102,
                              "ListenerPort": "admin"}]},
        "Config": {"protocol": "http"},
    }
    assert service["Connect"]["SidecarTask"] == {
        "Name": "proxy", "Driver": "raw_exec", "User": "nobody", "KillTimeout": 3_000_000_000,
        "ShutdownDelay": 1_000_000_000, "KillSignal": "SIGINT", "Config": {"command": "envoy"},
        "Env": {"LOG": "debug"}, "Resources": {"CPU": 50, "MemoryMB": 64}, "Meta": {"kind": "proxy"},
        "LogConfig": {"MaxFiles": 2, "MaxFileSizeMB": 2},
    }

    (task,) = group["Tasks"]
    assert (task["Driver"], task["User"], task["Leader"], task["KillSignal"]) == ("raw_exec", "app", True, "SIGTERM")
    assert (task["KillTimeout"], task["ShutdownDelay"]) == (20_000_000_000, 2_000_000_000)
    assert task["Config"] == {"command": "python3", "args": ["-m", "http.server", "${NOMAD_PORT_http}"],
                              "mount": [{"source": "a"}, {"source": "b"}]}
    # env as a map attribute: quoted keys, numbers converted to strings as HCL does
    assert task["Env"] == {"DOTTED.NAME": "x", "PORT": "${NOMAD_PORT_http}", "NUM": "3"}
    assert task["Resources"] == {"CPU": 200, "MemoryMB": 256, "MemoryMaxMB": 512}
    assert task["Lifecycle"] == {"Hook": "prestart", "Sidecar": True}
    assert task["LogConfig"] == {"MaxFiles": 3, "MaxFileSizeMB": 5}
    assert task["Templates"] == [{
        "EmbeddedTmpl": 'addr={{ env "NOMAD_ADDR_http" }} node=${node.unique.name} literal=${x}\n',
        "DestPath": "local/app.conf", "ChangeMode": "signal", "ChangeSignal": "sighup"}]
    assert task["Artifacts"] == [{"GetterSource": "https://example.com/app.tar.gz", "RelativeDest": "local/app",
                                  "GetterOptions": {"checksum": "sha256:abc"}}]
    assert task["Services"] == [{"Name": "app-task", "PortLabel": "http"}]
    assert task["RestartPolicy"] == {"Attempts": 1}
    assert task["Constraints"] == [{"Operand": "distinct_hosts"}]
    json.dumps(job)  # plain JSON all the way down


def _env(hcl_value: str) -> str:
    job = parse_hcl(f'job "j" {{\n group "g" {{\n  task "t" {{\n   driver = "raw_exec"\n'
                    f'   env {{\n    V = {hcl_value}\n   }}\n  }}\n }}\n}}\n')
    return job["TaskGroups"][0]["Tasks"][0]["Env"]["V"]


@pytest.mark.parametrize("hcl_value, expected", [
    (r'"$${NOMAD_PORT_http}"', "${NOMAD_PORT_http}"),          # escaped interpolation
    (r'"%%{ if true }"', "%{ if true }"),                     # escaped directive
    (r'"a \"quoted\" \\ back\\slash"', 'a "quoted" \\ back\\slash'),
    (r'"tab\tnew\nline"', "tab\tnew\nline"),
    (r'"\u00e9\U0001F600 ünïcode"', "é\U0001F600 ünïcode"),
    (r'"${node.unique.name}-${attr.kernel.name}-${meta.rack}"', "${node.unique.name}-${attr.kernel.name}-${meta.rack}"),
    (r'"${env["HOME"]}"', '${env["HOME"]}'),
    ('<<EOF\nline ${NOMAD_ALLOC_ID} $${lit} %%{x} \\n stays\nEOF', "line ${NOMAD_ALLOC_ID} ${lit} %{x} \\n stays\n"),
    ('<<-EOF\n      indented\n        more\n      EOF', "indented\n  more\n"),
    ("1.5", "1.5"),
    ("true", "true"),
])
def test_string_escapes_and_runtime_interpolation(hcl_value, expected):
    assert _env(hcl_value) == expected


def test_variables_defaults_overrides_and_locals():
    text = (FIXTURES / "full.nomad.hcl").read_text()
    job = parse_hcl(text, {"image_tag": "v9", "count": "4"})
    group = job["TaskGroups"][0]
    assert group["Count"] == 4  # "4" from a var file/CLI converted to the declared number type
    assert group["Services"][0]["Name"] == "web-v9"
    job = parse_hcl(text, 'image_tag = "v7"\ncount = 2\n')  # HCL var-file text, as /v1/jobs/parse takes it
    assert (job["TaskGroups"][0]["Count"], job["TaskGroups"][0]["Services"][0]["Name"]) == (2, "web-v7")


@pytest.mark.parametrize("text, message", [
    ('job "j" {\n  spread {\n    attribute = "x"\n  }\n}\n',
     'line 2, column 3: unsupported block "spread" in job "j"'),
    ('job "j" {\n  group "web" {\n    scaling {}\n  }\n}\n', 'unsupported block "scaling" in job "j" group "web"'),
    ('job "j" {\n  group "web" {\n    task "t" {\n      csi_plugin {}\n    }\n  }\n}\n',
     'unsupported block "csi_plugin" in job "j" group "web" task "t"'),
    ('job "j" {\n  group "g" {\n    colour = "red"\n  }\n}\n', 'line 3, column 5: unsupported attribute "colour"'),
    # Ingress gateways are implemented; terminating and mesh gateways are refused by name.
    ('job "j" {\n  group "g" {\n    service {\n      connect {\n        gateway {\n          terminating {}\n'
     '        }\n      }\n    }\n  }\n}\n',
     'unsupported block "terminating" in job "j" group "g" service connect gateway'),
    ('job "j" {\n  group "g" {\n    service {\n      connect {\n        gateway {\n          mesh {}\n'
     '        }\n      }\n    }\n  }\n}\n',
     'unsupported block "mesh" in job "j" group "g" service connect gateway'),
    ('periodic {}\njob "j" {}\n', 'unsupported block "periodic" at the top level'),
    ('job "j" {\n  group "g" {\n    count = "many"\n  }\n}\n', '"count" in job "j" group "g": expected a whole number'),
    ('job "j" {\n  update {\n    stagger = "10"\n  }\n}\n', 'invalid duration "10" (missing unit'),
    ('job "j" {\n  type = var.nope\n}\n', 'Unsupported attribute; This object does not have an attribute named "nope"'),
    ('job "j" {\n  type = NOMAD_X\n}\n', "unknown variable NOMAD_X"),
    ('job "j" {\n  type = lookup(a, b)\n}\n', 'unsupported function "lookup"'),
    ('variable "v" {}\njob "j" {}\n', 'Unset variable "v"; A used variable must be set or have a default value'),
    ('variable "p" {\n  type = string\n}\njob "j" {\n  meta {\n    w = "${var.p}/x"\n  }\n}\n', 'Unset variable "p"'),
    ('job "a" {}\njob "b" {}\n', "exactly one job block, found 2"),
    ('job "j" {\n  meta { a = "1" }\n  meta { b = "2" }\n}\n', 'only one "meta" is allowed'),
    ('job "j" {\n  type = "service"\n  type = "batch"\n}\n', 'attribute "type" is defined twice'),
    ('locals {\n  a = local.b\n  b = local.a\n}\njob "j" {\n  type = local.a\n}\n', "refers to itself"),
    ('job "j" {\n  type = "%{ if true }x%{ endif }"\n}\n', "template directives (%{ ... }) are not supported"),
])
def test_errors_name_the_block_or_field(text, message):
    with pytest.raises(JobspecError) as err:
        parse_hcl(text)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_undeclared_variable_value_is_an_error():
    with pytest.raises(JobspecError, match='Undefined -var variable; A "typo" variable was passed in'):
        parse_hcl('job "j" {}\n', {"typo": "x"})


def test_undeclared_name_in_a_var_file_is_only_nomads_warning():
    # /v1/jobs/parse's Variables is var-file text; Nomad (not strict there) warns and goes on.
    assert parse_hcl('job "j" {}\n', 'typo = "x"\n')["ID"] == "j"


def test_variables_interpolate_into_strings():
    text = ('variable "project_dir" {\n  type = string\n}\n'
            'job "j" {\n  meta {\n    w = "${var.project_dir}/s/o"\n  }\n}\n')
    assert parse_hcl(text, {"project_dir": "/srv/p"})["Meta"] == {"w": "/srv/p/s/o"}
    assert parse_hcl(text, 'project_dir = "/a b"\n')["Meta"] == {"w": "/a b/s/o"}


@pytest.mark.parametrize("text, line, column", [
    ('job "j" {\n  type = \n}\n', 2, 10),
    ('job "j" {\n  group "g" {\n    count = 1\n', None, None),
    ('job "j" {\n  env = "unterminated\n}\n', 2, 10),
])
def test_syntax_errors_carry_line_and_column(text, line, column):
    with pytest.raises(JobspecError) as err:
        parse_hcl(text)
    assert "syntax error" in str(err.value)
    if line is not None:
        assert (err.value.line, err.value.column) == (line, column)
        assert str(err.value).startswith(f"line {line}, column {column}: ")
