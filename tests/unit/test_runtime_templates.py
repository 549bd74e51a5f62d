"""Rendering a template block (runtime/templates.py): Nomad's paths, the render, the file, dotenv."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nomadmesh.agent.runtime.template_syntax import parse
from nomadmesh.agent.runtime.templates import (
    DEST_ESCAPES,
    Sources,
    TemplateError,
    client_path,
    escapes_via_symlink,
    health_instances,
    parse_env,
    parse_perms,
    render,
    service_name,
    write,
)
from nomadmesh.jobspec.validate import validate

ALLOC = "/a/alloc-1"
TASK = "/a/alloc-1/web"


@pytest.mark.parametrize("raw, join, expected, escapes", [
    ("local/app.conf", True, "/a/alloc-1/web/local/app.conf", False),
    ("/local/app.conf", True, "/a/alloc-1/web/local/app.conf", False),  # absolute: into the task dir
    ("../alloc/shared.conf", True, "/a/alloc-1/alloc/shared.conf", False),
    ("../../x", True, "/a/x", True),
    ("/etc/passwd", False, "/etc/passwd", True),  # a source outside the allocation
    ("local/in.tpl", False, "/a/alloc-1/web/local/in.tpl", False),
])
def test_client_path_follows_nomad(raw, join, expected, escapes):
    assert client_path(raw, TASK, ALLOC, join_escape=join) == (expected, escapes)
    assert DEST_ESCAPES == "template destination path escapes alloc directory"


def test_render_reads_keys_env_and_defaults():
    kv = {"db/host": "10.0.0.5"}
    out = render(parse('H={{ key "db/host" }} P={{ keyOrDefault "db/port" "5432" }} U={{ env "USER" }}'),
                 Sources(kv.get), {"USER": "app"})
    assert out.text == "H=10.0.0.5 P=5432 U=app" and out.missing == ()
    assert render(parse('{{ env "NOPE" }}'), Sources(kv.get), {}).text == ""


def test_a_missing_key_is_a_missing_dependency():
    out = render(parse('{{ key "a" }}{{ key "b" }}{{ key "a" }}'), Sources({}.get), {})
    assert out.missing == ("kv.block(a)", "kv.block(b)")


def test_write_sets_mode_atomically_and_skips_identical(tmp_path):
    path = str(tmp_path / "local" / "app.env")
    assert write(path, "A=1\n", 0o640) is True
    assert Path(path).read_text() == "A=1\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert write(path, "A=1\n", 0o640) is False
    assert write(path, "A=2\n", 0o640) is True
    assert [p.name for p in (tmp_path / "local").iterdir()] == ["app.env"]  # no temp file left


def test_perms_parse_like_strconv():
    assert parse_perms("0600") == 0o600 and parse_perms("755") == 0o755
    for bad in ("", "0x1", "9", "77777", "rw"):
        with pytest.raises(TemplateError, match="as octal"):
            parse_perms(bad)


def test_dotenv_of_env_templates():
    text = '# c\n\nA=1\nexport B = two words \nC="q\\n\\"x\\"" # tail\nD=\'lit $x\'\nE=v #c\n'
    assert parse_env(text) == {"A": "1", "B": "two words", "C": 'q\n"x"', "D": "lit $x", "E": "v"}
    for bad in ("no equals", "1A=x", 'A="open', "A='x' junk"):
        with pytest.raises(TemplateError, match="line 1"):
            parse_env(bad)


def _job(template: dict) -> dict:
    task = {"Name": "t", "Driver": "raw_exec", "Resources": {"CPU": 100, "MemoryMB": 64}, "Templates": [template]}
    return {"ID": "j", "Name": "j", "Type": "service", "Datacenters": ["dc1"], "Priority": 50,
            "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [task]}]}


@pytest.mark.parametrize("template, error", [
    ({"EmbeddedTmpl": "x", "DestPath": "../../etc/x", "ChangeMode": "restart"},
     "Template 1 validation failed: destination escapes allocation directory"),
    ({"EmbeddedTmpl": "x", "DestPath": "local/x", "ChangeMode": "restart", "Perms": "rw"},
     'Template 1 validation failed: Failed to parse "rw" as octal'),
    ({"EmbeddedTmpl": "x", "DestPath": "local/x", "ChangeMode": "bounce"},
     "Invalid change mode. Must be one of the following: noop, signal, script, restart"),
    ({"DestPath": "local/x", "ChangeMode": "noop"},
     "Must specify a source path or have an embedded template"),
    ({"EmbeddedTmpl": "x", "DestPath": "local/x", "ChangeMode": "signal", "ChangeSignal": "SIGHUP",
      "Envvars": True}, "cannot use signals with env var templates"),
])
def test_register_validation_uses_nomads_words(template, error):
    assert any(error in e for e in validate(_job(template))), validate(_job(template))


def test_absolute_or_sibling_destinations_are_valid_in_nomad():
    for dest in ("/local/x", "../alloc/x", "secrets/x"):
        job = _job({"EmbeddedTmpl": "x", "DestPath": dest, "ChangeMode": "restart"})
        assert not [e for e in validate(job) if "Template" in e], dest


def test_a_task_symlink_never_makes_the_agent_write_outside_the_allocation(tmp_path):
    alloc, outside = tmp_path / "alloc", tmp_path / "etc"
    (alloc / "web").mkdir(parents=True)
    outside.mkdir()
    (outside / "passwd").write_text("root\n")
    (alloc / "web" / "local").symlink_to(outside)  # the task swapped its local/ for a link
    for dest in ("local/passwd", "local/new/x"):
        with pytest.raises(TemplateError, match=DEST_ESCAPES):
            write(str(alloc / "web" / dest), "pwned\n", 0o644, alloc_dir=str(alloc))
    assert (outside / "passwd").read_text() == "root\n" and not (outside / "new").exists()

    (alloc / "web" / "local").unlink()
    (alloc / "web" / "local").mkdir()
    (alloc / "web" / "local" / "out").symlink_to(outside / "passwd")  # the file itself is a link
    assert write(str(alloc / "web" / "local" / "out"), "mine\n", 0o644, alloc_dir=str(alloc)) is True
    assert (outside / "passwd").read_text() == "root\n"
    assert (alloc / "web" / "local" / "out").read_text() == "mine\n"
    assert not (alloc / "web" / "local" / "out").is_symlink()


def test_a_source_symlink_out_of_the_allocation_escapes(tmp_path):
    (tmp_path / "alloc" / "web" / "local").mkdir(parents=True)
    link = tmp_path / "alloc" / "web" / "local" / "in.tpl"
    link.symlink_to("/etc/hostname")
    assert escapes_via_symlink(str(link), str(tmp_path / "alloc")) is True
    assert escapes_via_symlink(str(tmp_path / "alloc" / "web" / "local"), str(tmp_path / "alloc")) is False


def test_range_service_renders_passing_instances_sorted_and_by_tag():
    node = {"Node": "n1", "ID": "node-id", "Address": "127.0.0.1", "Datacenter": "dc1"}
    entries = [{"Node": node, "Service": {"ID": "b", "Service": "api", "Address": "", "Port": 2, "Tags": ["v2"]}},
               {"Node": node, "Service": {"ID": "a", "Service": "api", "Address": "10.0.0.1", "Port": 1,
                                          "Tags": ["v1", "x"]}}]
    lookup = {"api": entries}

    def service(wanted):
        return health_instances(lookup.get(service_name(wanted), []), wanted)

    nodes = parse('{{ range service "api" }}{{ .ID }}={{ .Address }}:{{ .Port }} {{ .Tags }};{{ end }}')
    assert render(nodes, Sources({}.get, service), {}).text == "a=10.0.0.1:1 [v1 x];b=127.0.0.1:2 [v2];"
    assert render(parse('{{ range service "v2.api" }}{{ .ID }}{{ end }}'), Sources({}.get, service), {}).text == "b"
    assert render(parse('{{ range service "none" }}x{{ end }}'), Sources({}.get, service), {}).text == ""


def test_range_connect_ls_and_nomad_var_render_what_their_lookups_give():
    pairs = [{"Path": "app/a", "Key": "a", "Value": "1"}, {"Path": "app/b/c", "Key": "b/c", "Value": "2"},
             {"Path": "app/", "Key": "", "Value": ""}, {"Path": "app/z", "Key": "z", "Value": "3"}]
    variables = {"nomad/jobs/web": {"user": "u", "password": "p"}, "empty": {}}
    sidecar = {"ID": "s1", "Address": "10.0.0.9", "Port": 21000}
    src = Sources({}.get, connect=lambda name: [sidecar] if name == "api" else [],
                  kv_list=lambda prefix: pairs if prefix == "app" else [], variable=variables.get, namespace="shop")
    template = ('{{ range ls "/app" }}{{ .Key }}={{ .Value }};{{ end }}'
                '{{ range connect "api" }}{{ .Address }}:{{ .Port }}{{ end }}'
                '{{ with nomadVar "nomad/jobs/web/" }} {{ .user }}:{{ .password }}{{ .nope }}{{ end }}'
                '{{ with nomadVar "empty" }}skipped{{ end }}'
                '{{ range nomadVar "nomad/jobs/web" }} {{ .Key }}={{ .Value }}{{ end }}')
    out = render(parse(template), src, {})
    # ls keeps the top-level keys only; with skips an empty variable; range goes by item name
    assert out.text == "a=1;z=3;10.0.0.9:21000 u:p password=p user=u" and out.missing == ()
    out = render(parse('{{ with nomadVar "nomad/jobs/db" }}{{ .password }}{{ end }}'), src, {})
    assert out.missing == ("nomad.var.block(nomad/jobs/db@shop.global)",)
