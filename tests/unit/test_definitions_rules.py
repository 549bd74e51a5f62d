"""Every validation rule of service definitions, with the exact message a user sees."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nomadmesh.definitions import load_spec
from support.spec_builders import UPSTREAMS, definition, edit, problems

NAME_RULE = ("must be lowercase letters, digits and dashes, start with a letter, not end with a dash, "
             "at most 63 characters")
A = definition("a", 5000)


def one(tmp_path: Path, doc: Any) -> list[tuple[str, str]]:
    """(field, message) of each problem of a folder holding only `doc` (as service `a`)."""
    return [(field, msg) for _, field, msg in problems(tmp_path, {"a": doc})]


# (case id, edited definition of service "a", expected (field, message) list)
SINGLE_FILE_CASES: list[tuple[str, Any, list[tuple[str, str]]]] = [
    ("not an object", [1, 2], [("", "must be a JSON object with a 'service' key, got array")]),
    ("missing service", {"nomad": A["nomad"]}, [("service", "is required (Consul's service definition)")]),
    ("service not an object", edit(A, "service", "a"), [("service", "must be an object, got string 'a'")]),
    ("missing name", edit(A, "service.name", "_delete"), [("service.name", "is required")]),
    ("uppercase name", edit(A, "service.name", "Api"), [("service.name", f"'Api' is not a valid name: {NAME_RULE}")]),
    ("name with quote and ${", edit(A, "service.name", 'a"${x}'),
     [("service.name", f"'a\"${{x}}' is not a valid name: {NAME_RULE}")]),
    ("name with newline", edit(A, "service.name", "a\nb"),
     [("service.name", f"'a\\nb' is not a valid name: {NAME_RULE}")]),
    ("name starting with digit", edit(A, "service.name", "1a"),
     [("service.name", f"'1a' is not a valid name: {NAME_RULE}")]),
    ("name ending with dash", edit(A, "service.name", "a-"),
     [("service.name", f"'a-' is not a valid name: {NAME_RULE}")]),
    ("name too long", edit(A, "service.name", "a" * 64),
     [("service.name", f"{'a' * 64!r} is not a valid name: {NAME_RULE}")]),
    ("name not a string", edit(A, "service.name", 7), [("service.name", "must be a string, got number 7")]),
    ("port missing", edit(edit(A, "service.port", "_delete"), "service.connect", "_delete"),
     [("service.port", "is required")]),
    ("port zero", edit(A, "service.port", 0), [("service.port", "must be an integer from 1 to 65535, got 0")]),
    ("port too big", edit(A, "service.port", 65536),
     [("service.port", "must be an integer from 1 to 65535, got 65536")]),
    ("port string", edit(A, "service.port", "5000"),
     [("service.port", "must be an integer from 1 to 65535, got string '5000'")]),
    ("port bool", edit(A, "service.port", True),
     [("service.port", "must be an integer from 1 to 65535, got boolean true")]),
    ("port float", edit(A, "service.port", 5000.5),
     [("service.port", "must be an integer from 1 to 65535, got number 5000.5")]),
    ("unknown top key", edit(A, "nomda", {}), [("nomda", "unknown key; did you mean 'nomad'?")]),
    ("unknown service key", edit(A, "service.tag", ["x"]), [("service.tag", "unknown key; did you mean 'tags'?")]),
    ("upstream for upstreams", edit(A, "service.connect.sidecar_service.proxy.upstream", []),
     [("service.connect.sidecar_service.proxy.upstream", "unknown key; did you mean 'upstreams'?")]),
    ("CamelCase key", edit(A, "service.Port", 1),
     [("service.Port", "unknown key; did you mean 'port'?")]),
    ("unknown nomad key", edit(A, "nomad.comand", "x"), [("nomad.comand", "unknown key; did you mean 'command'?")]),
    ("unknown key without a close match", edit(A, "nomad.update.zzz", 1),
     [("nomad.update.zzz", "unknown key; expected one of auto_promote, auto_revert, canary, health_check, "
       "healthy_deadline, max_parallel, min_healthy_time, progress_deadline")]),
    ("consul key nomadmesh does not support", edit(A, "service.connect.native", True),
     [("service.connect.native", "is a Consul key that nomadmesh does not support")]),
    ("connect without sidecar", edit(A, "service.connect", {}),
     [("service.connect.sidecar_service", "is required: nomadmesh runs every Connect service with a sidecar")]),
    ("upstreams not an array", edit(A, UPSTREAMS, {"x": 1}),
     [(UPSTREAMS, "must be an array, got object")]),
    ("upstream local_bind_port = own port", definition("a", 5000, {"b": 5000}),
     [(f"{UPSTREAMS}[0].local_bind_port", "5000 is the service's own port (service.port)"),
      (f"{UPSTREAMS}[0].destination_name", "'b' is not a service defined in {dir} (defined: a); if it runs outside "
       "this folder, pass --allow-external b or list it in the project file's external_services")]),
    ("upstream to itself", definition("a", 5000, {"a": 6000}),
     [(f"{UPSTREAMS}[0].destination_name", "'a' is this service itself; a service reaches itself without the mesh")]),
    ("upstream bad bind port type", edit(A, f"{UPSTREAMS}", [{"destination_name": "a1", "local_bind_port": "6001"}]),
     [(f"{UPSTREAMS}[0].local_bind_port", "must be an integer from 1 to 65535, got string '6001'"),
      (f"{UPSTREAMS}[0].destination_name", "'a1' is not a service defined in {dir} (defined: a); did you mean 'a'? "
       "if it runs outside this folder, pass --allow-external a1 or list it in the project file's external_services")]),
    ("upstream missing fields", edit(A, f"{UPSTREAMS}", [{}]),
     [(f"{UPSTREAMS}[0].destination_name", "is required"), (f"{UPSTREAMS}[0].local_bind_port", "is required")]),
    ("upstream bad address and datacenter", edit(A, f"{UPSTREAMS}", [
        {"destination_name": "a", "local_bind_port": 6001, "local_bind_address": "localhost", "datacenter": "dc 1"}]),
     [(f"{UPSTREAMS}[0].local_bind_address", "must be an IP address like '127.0.0.1', got 'localhost'"),
      (f"{UPSTREAMS}[0].datacenter", "'dc 1' is not a datacenter name: letters, digits, '-' and '_'"),
      (f"{UPSTREAMS}[0].destination_name", "'a' is this service itself; a service reaches itself without the mesh")]),
    ("tags not strings", edit(A, "service.tags", ["ok", 3]), [("service.tags[1]", "must be a string, got number 3")]),
    ("meta key not identifier", edit(A, "service.meta", {"a-b": "x"}),
     [("service.meta.a-b", "key 'a-b' must be letters, digits and underscores, not starting with a digit")]),
    ("meta value not string", edit(A, "service.meta", {"k": 1}),
     [("service.meta.k", "must be a string, got number 1")]),
    ("nomad missing", edit(A, "nomad", "_delete"),
     [("nomad", "is required: say how Nomad runs the service (driver and command, or docker and image)")]),
    ("bad driver", edit(A, "nomad.driver", "java"),
     [("nomad.driver", "must be one of raw_exec, exec, docker, got 'java'")]),
    ("raw_exec without command", edit(A, "nomad.command", "_delete"),
     [("nomad.command", "is required for the raw_exec driver")]),
    ("exec with empty command", edit(edit(A, "nomad.driver", "exec"), "nomad.command", " "),
     [("nomad.command", "must not be empty")]),
    ("exec with image", edit(edit(A, "nomad.driver", "exec"), "nomad.image", "x"),
     [("nomad.image", "is only used by the docker driver")]),
    ("docker without image", edit(A, "nomad", {"driver": "docker"}),
     [("nomad.image", "is required for the docker driver")]),
    ("docker with command", edit(A, "nomad", {"driver": "docker", "image": "nginx", "command": "x"}),
     [("nomad.command", "is only used by the raw_exec and exec drivers")]),
    ("args not strings", edit(A, "nomad.args", ["x", None]), [("nomad.args[1]", "must be a string, got null")]),
    ("env key not identifier", edit(A, "nomad.env", {"MY-VAR": "1", "OK": "2"}),
     [("nomad.env.MY-VAR", "key 'MY-VAR' must be letters, digits and underscores, not starting with a digit")]),
    ("env value not string", edit(A, "nomad.env", {"N": 1}), [("nomad.env.N", "must be a string, got number 1")]),
    ("env not object", edit(A, "nomad.env", ["A=1"]), [("nomad.env", "must be an object of strings, got array")]),
    ("negative count", edit(A, "nomad.count", -1), [("nomad.count", "must be an integer of at least 0, got -1")]),
    ("count string", edit(A, "nomad.count", "2"),
     [("nomad.count", "must be an integer of at least 0, got string '2'")]),
    ("resources", edit(A, "nomad.resources", {"cpu": 0, "memory": 5, "disk": 1}),
     [("nomad.resources.disk", "unknown key; expected one of cpu, memory"),
      ("nomad.resources.cpu", "must be an integer of at least 1, got 0"),
      ("nomad.resources.memory", "must be an integer of at least 10, got 5")]),
    ("publish out of range", edit(A, "nomad.publish", 70000),
     [("nomad.publish", "must be an integer from 0 to 65535, got 70000")]),
    ("publish bool", edit(A, "nomad.publish", False),
     [("nomad.publish", "must be an integer from 0 to 65535, got boolean false")]),
    ("bad durations", edit(A, "nomad.restart", {"interval": "10", "delay": "-1s", "mode": "retry", "attempts": -1}),
     [("nomad.restart.attempts", "must be an integer of at least 0, got -1"),
      ("nomad.restart.interval", "must be a duration like '10s', '5m' or '1m30s', got '10'"),
      ("nomad.restart.delay", "must be a duration like '10s', '5m' or '1m30s', got '-1s'"),
      ("nomad.restart.mode", "must be one of fail, delay, got 'retry'")]),
    ("update", edit(A, "nomad.update", {"health_check": "x", "auto_revert": "yes", "canary": -1}),
     [("nomad.update.health_check", "must be one of checks, task_states, manual, got 'x'"),
      ("nomad.update.auto_revert", "must be true or false, got string 'yes'"),
      ("nomad.update.canary", "must be an integer of at least 0, got -1")]),
    ("auto_promote without canaries", edit(A, "nomad.update", {"auto_promote": True}),
     [("nomad.update.auto_promote", "needs canary greater than 0 (auto_promote promotes canaries)")]),
    ("update deadline order", edit(A, "nomad.update", {"min_healthy_time": "5m", "healthy_deadline": "5m"}),
     [("nomad.update.min_healthy_time", "must be shorter than healthy_deadline (5m)")]),
    ("http check without path", edit(A, "nomad.checks", [{"type": "http"}]),
     [("nomad.checks[0].path", "is required for http checks (e.g. '/health')")]),
    ("http check relative path", edit(A, "nomad.checks", [{"type": "http", "path": "health"}]),
     [("nomad.checks[0].path", "must start with '/', got 'health'")]),
    ("tcp check with path",
     edit(edit(A, "service.connect", "_delete"), "nomad.checks", [{"type": "tcp", "path": "/x"}]),
     [("nomad.checks[0].path", "is only for http checks")]),
    ("check type", edit(A, "nomad.checks", [{"type": "grpc"}, {"path": "/"}]),
     [("nomad.checks[0].type", "must be one of http, tcp, got 'grpc'"), ("nomad.checks[1].type", "is required")]),
    ("check duration", edit(A, "nomad.checks", [{"type": "http", "path": "/", "interval": "5 seconds"}]),
     [("nomad.checks[0].interval", "must be a duration like '10s', '5m' or '1m30s', got '5 seconds'")]),
    ("duplicate check names",
     edit(A, "nomad.checks", [{"type": "http", "path": "/", "name": "c"}, {"type": "http", "path": "/", "name": "c"}]),
     [("nomad.checks[1].name", "check name 'c' is already used by nomad.checks[0]")]),
    ("consul check on another port", edit(A, "service.check", {"http": "http://localhost:5001/health"}),
     [("service.check.http", "checks port 5001 but the service port is 5000; Nomad checks the service port")]),
    ("consul check bad url", edit(A, "service.check", {"http": "localhost/health"}),
     [("service.check.http", "must be a URL like 'http://localhost:5000/health', got 'localhost/health'")]),
    ("consul ttl check", edit(A, "service.checks", [{"ttl": "30s"}]),
     [("service.checks[0].ttl", "is a Consul key that nomadmesh does not support"),
      ("service.checks[0]", "needs exactly one of 'http' (a URL) or 'tcp' (host:port); nomadmesh renders only these")]),
    ("duplicate JSON key", '{"service": {"name": "a", "port": 1, "port": 2}, "nomad": {"command": "x"}}',
     [("service.port", "key appears more than once in this object (JSON keeps only the last)")]),
]


@pytest.mark.parametrize("doc, expected", [c[1:] for c in SINGLE_FILE_CASES], ids=[c[0] for c in SINGLE_FILE_CASES])
def test_single_file_rule(tmp_path: Path, doc: Any, expected: list[tuple[str, str]]) -> None:
    services = tmp_path / "services"
    assert one(tmp_path, doc) == [(f, m.replace("{dir}", str(services))) for f, m in expected]


def test_two_upstreams_on_one_local_bind_port(tmp_path: Path) -> None:
    docs = {"a": definition("a", 5000, {"b": 6001, "c": 6001}), "b": definition("b", 5001), "c": definition("c", 5002)}
    assert problems(tmp_path, docs) == [
        ("a", f"{UPSTREAMS}[1].local_bind_port", "6001 is already used by upstreams[0] (b)")]


def test_two_services_may_share_a_local_bind_port(tmp_path: Path) -> None:
    # Each allocation has its own network namespace, so this is legal (see DESIGN.md).
    docs = {"a": definition("a", 5000, {"c": 6001}), "b": definition("b", 5001, {"c": 6001}),
            "c": definition("c", 5002)}
    from support.spec_builders import write_services

    assert load_spec(write_services(tmp_path, docs)).names == ("a", "b", "c")


def test_duplicate_names_name_both_files(tmp_path: Path) -> None:
    docs = {"one": definition("api", 5000), "two": definition("api", 5001)}
    first = tmp_path / "services" / "one" / "service.json"
    assert problems(tmp_path, docs) == [("two", "service.name", f"'api' is also defined in {first}")]


def test_undefined_upstream_suggests_a_close_name(tmp_path: Path) -> None:
    docs = {"order": definition("order", 5000, {"invoce": 6001}), "invoice": definition("invoice", 5001)}
    services = tmp_path / "services"
    assert problems(tmp_path, docs) == [(
        "order", f"{UPSTREAMS}[0].destination_name",
        f"'invoce' is not a service defined in {services} (defined: invoice, order); did you mean 'invoice'? "
        "if it runs outside this folder, pass --allow-external invoce "
        "or list it in the project file's external_services",
    )]  # fmt: skip


def test_external_upstream_allowed_by_flag_or_project_file(tmp_path: Path) -> None:
    from support.spec_builders import write_services

    services = write_services(tmp_path, {"a": definition("a", 5000, {"billing": 6001})})
    assert load_spec(services, allow_external=["billing"]).service("a").upstreams[0].destination_name == "billing"
    (tmp_path / "nomadmesh.json").write_text('{"external_services": ["billing"]}')
    spec = load_spec(services)
    assert spec.project.external_services == ("billing",)
    assert spec.project.source == str(tmp_path / "nomadmesh.json")


def test_same_static_publish_port_names_both_files(tmp_path: Path) -> None:
    docs = {"a": definition("a", 5000, publish=8080), "b": definition("b", 5001, publish=8080),
            "c": definition("c", 5002, publish=0), "d": definition("d", 5003, publish=0)}  # fmt: skip
    a = tmp_path / "services" / "a" / "service.json"
    assert problems(tmp_path, docs) == [("b", "nomad.publish", f"host port 8080 is also published by {a}")]


def test_cycle_is_a_warning_naming_the_cycle(tmp_path: Path) -> None:
    from support.spec_builders import write_services

    docs = {"a": definition("a", 5000, {"b": 6001}), "b": definition("b", 5001, {"c": 6002}),
            "c": definition("c", 5002, {"a": 6003}), "d": definition("d", 5003, {"a": 6004})}  # fmt: skip
    spec = load_spec(write_services(tmp_path, docs))
    a = tmp_path / "services" / "a" / "service.json"
    assert spec.warnings == (
        f"{a}: service.connect.sidecar_service.proxy.upstreams: "
        "upstream cycle a → b → c → a (legal in a mesh, but a request can go round it)",
    )


def test_every_problem_of_every_file_at_once(tmp_path: Path) -> None:
    docs = {
        "a": edit(edit(definition("a", 5000, {"zzz": 6001}), "service.port", "x"), "nomad.count", -2),
        "b": "{\n  \"service\": {\n    \"name\": \"b\",\n  }\n}",
        "c": edit(definition("c", 5002), "nomad.driver", "docker"),
    }
    services = tmp_path / "services"
    assert problems(tmp_path, docs) == [
        ("a", "service.port", "must be an integer from 1 to 65535, got string 'x'"),
        ("a", "nomad.count", "must be an integer of at least 0, got -2"),
        ("a", f"{UPSTREAMS}[0].destination_name",
         f"'zzz' is not a service defined in {services} (defined: a, c); if it runs outside this folder, "
         "pass --allow-external zzz or list it in the project file's external_services"),
        ("b", "", "invalid JSON at line 4, column 3: Expecting property name enclosed in double quotes"),
        ("c", "nomad.image", "is required for the docker driver"),
        ("c", "nomad.command", "is only used by the raw_exec and exec drivers"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "value",
    ['say "hi"', "${var.x}", "%{ if true }x%{ endif }", "{{ env \"X\" }}", "line1\nline2", "ünïcødé ✓", "back\\slash"],
)
def test_free_text_accepts_anything(tmp_path: Path, value: str) -> None:
    from support.spec_builders import write_services

    doc = definition("a", 5000, args=[value], env={"V": value})
    doc["service"]["tags"] = [value]
    doc["service"]["meta"] = {"m": value}
    doc["nomad"]["command"] = value
    service = load_spec(write_services(tmp_path, {"a": doc})).service("a")
    assert (service.tags, service.meta, service.run.command, service.run.args, service.run.env) == (
        (value,), (("m", value),), value, (value,), (("V", value),)
    )  # fmt: skip


@pytest.mark.parametrize("value", ["1.5s", "1h2m", "300ms", "1us", "1\u00b5s", "+2s", "0"])
def test_durations_are_whatever_nomad_parses(tmp_path: Path, value: str) -> None:
    """One duration parser (nomadmesh.durations, Go's time.ParseDuration): `validate` takes "1.5s"
    as Nomad does (it used to refuse it), and the job keeps the text as written."""
    from support.spec_builders import write_services

    doc = edit(edit(A, "nomad.restart", {"delay": value}), "nomad.checks",
               [{"type": "http", "path": "/", "interval": value if value != "0" else "2s", "timeout": value}])
    service = load_spec(write_services(tmp_path, {"a": doc})).service("a")
    assert service.run.restart.delay == value
    assert service.checks[0].timeout == value
