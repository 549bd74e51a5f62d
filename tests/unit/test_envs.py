"""Environments (`--env NAME` → envs/NAME.json over nomadmesh.json and service.json), issue 12 item 5."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from nomadmesh.cli.main import cli
from nomadmesh.definitions import load_spec
from nomadmesh.definitions.envs import deep_merge, leaf_paths
from nomadmesh.errors import SpecError
from support.paths import SERVICES

# --- the pure merge ---------------------------------------------------------------------------

def test_deep_merge_merges_objects_and_replaces_everything_else() -> None:
    base = {"service": {"name": "api", "tags": ["a", "b"], "meta": {"x": "1"}}, "nomad": {"count": 1}}
    override = {"service": {"tags": ["prod"], "meta": {"y": "2"}}, "nomad": {"count": 3, "env": {"A": "b"}}}
    assert deep_merge(base, override) == {
        "service": {"name": "api", "tags": ["prod"], "meta": {"x": "1", "y": "2"}},
        "nomad": {"count": 3, "env": {"A": "b"}},
    }


def test_deep_merge_leaves_its_inputs_alone() -> None:
    base: dict[str, Any] = {"nomad": {"resources": {"cpu": 100, "memory": 64}}}
    override = {"nomad": {"resources": {"cpu": 500}}}
    merged = deep_merge(base, override)
    assert merged["nomad"]["resources"] == {"cpu": 500, "memory": 64}
    assert base == {"nomad": {"resources": {"cpu": 100, "memory": 64}}}


def test_an_object_over_a_scalar_replaces_it() -> None:
    assert deep_merge({"a": 1}, {"a": {"b": 2}}) == {"a": {"b": 2}}
    assert deep_merge({"a": {"b": 2}}, {"a": None}) == {"a": None}


def test_leaf_paths_walk_objects_only() -> None:
    assert leaf_paths({"nomad": {"count": 3, "env": {"A": "b"}}, "service": {"tags": ["x"]}}) == [
        "nomad.count", "nomad.env.A", "service.tags"]


# --- load_spec with an env file -----------------------------------------------------------------

@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(SERVICES, tmp_path / "services")
    (tmp_path / "nomadmesh.json").write_text(json.dumps({"datacenters": ["dc1"]}))
    (tmp_path / "envs").mkdir()
    return tmp_path


def write_env(project: Path, name: str, doc: Any) -> None:
    (project / "envs" / f"{name}.json").write_text(json.dumps(doc))


def problems(project: Path, env: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(project / "services", env=env)
    return [str(p) for p in caught.value.problems]


def test_env_overrides_project_and_service_settings(project: Path) -> None:
    write_env(project, "prod", {
        "project": {"datacenters": ["eu-west"], "region": "europe"},
        "services": {"order": {"service": {"tags": ["prod"], "meta": {"tier": "gold"}},
                               "nomad": {"count": 3, "resources": {"cpu": 500}, "env": {"MODE": "prod"}}}},
    })
    plain = load_spec(project / "services")
    prod = load_spec(project / "services", env="prod")
    assert prod.project.datacenters == ("eu-west",) and prod.project.region == "europe"
    order = {s.name: s for s in prod.services}["order"]
    before = {s.name: s for s in plain.services}["order"]
    assert order.run.count == 3 and before.run.count != 3
    assert order.run.resources.cpu == 500
    assert order.run.resources.memory == before.run.resources.memory  # deep-merged, not replaced
    assert order.tags == ("prod",)
    assert ("tier", "gold") in order.meta
    assert ("MODE", "prod") in order.run.env
    assert dict(order.run.env).items() >= dict(before.run.env).items()
    untouched = {s.name: s for s in prod.services}["tax"]
    assert untouched == {s.name: s for s in plain.services}["tax"]


def test_without_env_the_env_files_are_not_read(project: Path) -> None:
    write_env(project, "prod", {"services": {"order": {"nomad": {"count": 7}}}})
    assert all(s.run.count != 7 for s in load_spec(project / "services").services)


def test_a_bad_override_names_the_env_file_and_field(project: Path) -> None:
    write_env(project, "prod", {"services": {"order": {"nomad": {"count": -1}}}})
    found = problems(project, "prod")
    assert len(found) == 1
    assert found[0].startswith("envs/prod.json: services.order.nomad.count: ")


def test_an_unknown_key_in_an_override_is_an_error(project: Path) -> None:
    write_env(project, "prod", {"services": {"order": {"nomad": {"cuont": 3}}}})
    assert [p for p in problems(project, "prod") if p.startswith("envs/prod.json: services.order.nomad.cuont: ")]


def test_an_override_for_an_unknown_service_is_an_error(project: Path) -> None:
    write_env(project, "prod", {"services": {"ordr": {"nomad": {"count": 3}}}})
    found = problems(project, "prod")
    assert len(found) == 1 and found[0].startswith("envs/prod.json: services.ordr: no such service")
    assert "order" in found[0]


def test_a_bad_project_override_names_the_env_file(project: Path) -> None:
    write_env(project, "prod", {"project": {"region": "no spaces"}})
    assert problems(project, "prod") == [
        "envs/prod.json: project.region: 'no spaces' is not a region name: letters, digits, '-' and '_'"]


def test_a_missing_env_file_is_an_error_listing_the_ones_there(project: Path) -> None:
    write_env(project, "prod", {})
    found = problems(project, "staging")
    assert len(found) == 1 and found[0].startswith("envs/staging.json: does not exist")
    assert found[0].endswith("environments: prod")


@pytest.mark.parametrize("name", ["../nomadmesh", "a/b", ".hidden", ""])
def test_an_env_name_is_never_a_path(project: Path, name: str) -> None:
    found = problems(project, name)
    assert len(found) == 1 and "is not an environment name" in found[0]


def test_the_env_file_must_be_shaped_like_one(project: Path) -> None:
    write_env(project, "prod", {"servics": {}, "project": []})
    assert problems(project, "prod") == [
        "envs/prod.json: servics: unknown key; expected one of: project, services, variables, name_suffix",
        "envs/prod.json: project: must be a JSON object",
    ]


# --- through the CLI ------------------------------------------------------------------------------

def render(project: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["render", "--services", str(project / "services"),
                                    "--out", str(project / "jobs"), "--format", "json", *args])


def test_render_env_writes_the_overridden_jobs(project: Path) -> None:
    write_env(project, "prod", {"services": {"order": {"nomad": {"count": 3}}}})
    result = render(project, "--env", "prod", "order")
    assert result.exit_code == 0, result.output
    job = json.loads((project / "jobs" / "order.nomad.json").read_text())["Job"]
    assert job["TaskGroups"][0]["Count"] == 3


@pytest.mark.parametrize("env_doc", [None, {"services": {"nope": {}}}, {"services": {"order": {"nomad": {"x": 1}}}}])
def test_render_bad_env_exits_2_and_writes_nothing(project: Path, env_doc: Any) -> None:
    if env_doc is not None:
        write_env(project, "prod", env_doc)
    result = render(project, "--env", "prod")
    assert result.exit_code == 2, result.output
    assert "envs/prod.json: " in result.output
    assert "Traceback" not in result.output
    assert not (project / "jobs").exists()


# --- template variables -------------------------------------------------------------------------

DECLARED = {
    "tag": {"type": "string", "default": "latest", "description": "image tag"},
    "replicas": {"type": "number", "default": 1},
    "debug": {"type": "bool", "default": False},
    "owner": {"type": "string", "required": True},
}


@pytest.fixture
def with_vars(project: Path) -> Path:
    (project / "nomadmesh.json").write_text(json.dumps({"datacenters": ["dc1"], "variables": DECLARED}))
    return project


def values(project: Path, env: str | None = None, environ: dict[str, str] | None = None,
           assignments: tuple[str, ...] = ()) -> dict[str, Any]:
    spec = load_spec(project / "services", env=env, environ=environ or {}, variables=assignments)
    return dict(spec.project.vars)


def var_problems(project: Path, env: str | None = None, environ: dict[str, str] | None = None,
                 assignments: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(project / "services", env=env, environ=environ or {}, variables=assignments)
    return [str(p) for p in caught.value.problems]


def test_precedence_defaults_then_env_file_then_environment_then_var(with_vars: Path) -> None:
    write_env(with_vars, "prod", {"variables": {"tag": "from-env-file", "replicas": 3, "owner": "ops"}})
    assert values(with_vars, assignments=("owner=me",)) == {
        "tag": "latest", "replicas": 1, "debug": False, "owner": "me"}
    assert values(with_vars, "prod")["tag"] == "from-env-file"
    assert values(with_vars, "prod", {"NOMADMESH_VAR_tag": "from-environ"})["tag"] == "from-environ"
    assert values(with_vars, "prod", {"NOMADMESH_VAR_tag": "from-environ"}, ("tag=from-var",))["tag"] == "from-var"
    assert values(with_vars, "prod", {"NOMADMESH_VAR_replicas": "2.5", "NOMADMESH_VAR_debug": "true"})[
        "replicas"] == 2.5


def test_text_values_are_converted_to_the_declared_type(with_vars: Path) -> None:
    got = values(with_vars, environ={"NOMADMESH_VAR_debug": "true"}, assignments=("owner=x", "replicas=4"))
    assert got["debug"] is True and got["replicas"] == 4


def test_an_unknown_variable_is_an_error_with_did_you_mean(with_vars: Path) -> None:
    found = var_problems(with_vars, assignments=("owner=x", "tga=1"))
    assert found == ["--var tga=1: no such variable; did you mean 'tag'? (declared: debug, owner, replicas, tag)"]
    write_env(with_vars, "prod", {"variables": {"ownr": "x"}})
    assert any(p.startswith("envs/prod.json: variables.ownr: no such variable; did you mean 'owner'?")
               for p in var_problems(with_vars, "prod"))


DECLARED_NAMES = "(declared: debug, owner, replicas, tag)"


@pytest.mark.parametrize(("stray", "hint"), [
    ("tga", "; did you mean 'tag'?"), ("TAG", "; did you mean 'tag'?"), ("zzz", ""),
], ids=["typo", "case", "nothing close"])
def test_a_stray_environment_variable_is_a_warning_naming_it_and_the_closest(
        with_vars: Path, stray: str, hint: str) -> None:
    # Like TF_VAR_ in Terraform: the environment is shared with other projects, so an undeclared
    # NOMADMESH_VAR_ is ignored with a warning, never an error; the value is not used.
    spec = load_spec(with_vars / "services", environ={f"NOMADMESH_VAR_{stray}": "1", "NOMADMESH_VAR_owner": "x"})
    assert spec.warnings == (f"$NOMADMESH_VAR_{stray}: ignored: no such variable{hint} {DECLARED_NAMES}",)
    assert dict(spec.project.vars) == {"tag": "latest", "replicas": 1, "debug": False, "owner": "x"}


def test_a_stray_environment_variable_without_declarations_says_none_are_declared(project: Path) -> None:
    spec = load_spec(project / "services", environ={"NOMADMESH_VAR_tag": "v2"})
    assert spec.warnings == ("$NOMADMESH_VAR_tag: ignored: no such variable (nomadmesh.json declares none)",)


def test_render_prints_the_stray_variable_warning_and_still_renders(with_vars: Path) -> None:
    result = CliRunner().invoke(cli, ["render", "--services", str(with_vars / "services"), "--out",
                                      str(with_vars / "jobs"), "tax", "--var", "owner=x"],
                                env={"NOMADMESH_VAR_tga": "v2"})
    assert result.exit_code == 0, result.output
    assert result.stderr == (f"warning: $NOMADMESH_VAR_tga: ignored: no such variable; did you mean 'tag'? "
                             f"{DECLARED_NAMES}\n")
    assert (with_vars / "jobs" / "tax.nomad.hcl").exists()


def test_a_case_only_mistake_in_var_suggests_the_declared_name(with_vars: Path) -> None:
    assert var_problems(with_vars, assignments=("owner=x", "Tag=1")) == [
        f"--var Tag=1: no such variable; did you mean 'tag'? {DECLARED_NAMES}"]


def test_a_missing_required_variable_says_where_to_set_it(with_vars: Path) -> None:
    found = var_problems(with_vars)
    assert len(found) == 1
    assert found[0].endswith("nomadmesh.json: variables.owner: is required and has no value: set it with "
                             "--var owner=..., NOMADMESH_VAR_owner or an env file's \"variables\"")


@pytest.mark.parametrize(("environ", "assignments", "env_vars", "expected"), [
    ({}, ("owner=x", "replicas=many"), None, "--var replicas=many: 'many' is not a number"),
    ({"NOMADMESH_VAR_debug": "yes"}, ("owner=x",), None, "$NOMADMESH_VAR_debug: 'yes' is not a bool: true or false"),
    ({}, (), {"owner": "x", "replicas": "3"}, "envs/prod.json: variables.replicas: must be a number"),
    ({}, ("owner",), None, "--var owner: expected NAME=VALUE"),
])
def test_a_value_of_the_wrong_type_is_an_error(with_vars: Path, environ: dict[str, str],
                                                assignments: tuple[str, ...], env_vars: Any, expected: str) -> None:
    if env_vars is not None:
        write_env(with_vars, "prod", {"variables": env_vars})
    assert expected in var_problems(with_vars, "prod" if env_vars is not None else None, environ, assignments)


@pytest.mark.parametrize(("declared", "field"), [
    ({"x": {"type": "str"}}, "variables.x.type"),
    ({"x": {"type": "number", "default": "1"}}, "variables.x.default"),
    ({"x": {"typo": 1}}, "variables.x.typo"),
    ({"x-y": {}}, "variables['x-y']"),
])
def test_a_bad_declaration_is_an_error(project: Path, declared: Any, field: str) -> None:
    (project / "nomadmesh.json").write_text(json.dumps({"variables": declared}))
    found = var_problems(project)
    assert len(found) == 1 and ": variables." in found[0], found


def test_templates_read_variables_through_the_filters(with_vars: Path) -> None:
    from nomadmesh.pack import BUILTIN_DIR, TEMPLATES_DIR
    templates = with_vars / TEMPLATES_DIR
    templates.mkdir()
    text = (BUILTIN_DIR / "job.nomad.hcl.j2").read_text()
    text = text.replace("meta {\n", "meta {\nimage_tag = [[ v.vars.tag | q ]]\n", 1)
    (templates / "job.nomad.hcl.j2").write_text(text)
    result = render(with_vars, "--var", "owner=x", "--var", "tag=v1.2", "order")
    assert result.exit_code == 0, result.output
    job = json.loads((with_vars / "jobs" / "order.nomad.json").read_text())["Job"]
    assert job["Meta"]["image_tag"] == "v1.2"


def test_init_writes_an_env_that_renders(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    assert CliRunner().invoke(cli, ["init", str(project)]).exit_code == 0
    result = CliRunner().invoke(cli, ["render", "--services", str(project / "services"), "--env", "prod",
                                      "--out", str(project / "jobs"), "--format", "json"])
    assert result.exit_code == 0, result.output
    job = json.loads((project / "jobs" / "hello.nomad.json").read_text())["Job"]
    assert job["TaskGroups"][0]["Count"] == 2


def test_a_variable_value_changes_the_definition_hash(with_vars: Path) -> None:
    from nomadmesh.render.ownership import HASH_KEY

    def hash_with(tag: str) -> str:
        result = render(with_vars, "--var", "owner=x", "--var", f"tag={tag}", "order")
        assert result.exit_code == 0, result.output
        return str(json.loads((with_vars / "jobs" / "order.nomad.json").read_text())["Job"]["Meta"][HASH_KEY])

    assert hash_with("a") != hash_with("b")


# --- preview environments (name_suffix) ----------------------------------------------------------

def test_a_preview_env_renames_every_service_and_the_upstreams_to_them(project: Path) -> None:
    write_env(project, "pr42", {"name_suffix": "-pr42"})
    spec = load_spec(project / "services", env="pr42")
    by_name = {s.name: s for s in spec.services}
    assert sorted(by_name) == ["ingress-pr42", "invoice-pr42", "order-pr42", "tax-pr42"]
    assert [u.destination_name for u in by_name["order-pr42"].upstreams] == ["invoice-pr42"]
    assert [s.name for lst in by_name["ingress-pr42"].ingress for s in lst.services] == ["order-pr42"]


def test_a_preview_env_keeps_external_upstream_names(project: Path) -> None:
    order = project / "services" / "order" / "service.json"
    doc = json.loads(order.read_text())
    doc["service"]["connect"]["sidecar_service"]["proxy"]["upstreams"].append(
        {"destination_name": "billing", "local_bind_port": 6099})
    order.write_text(json.dumps(doc))
    write_env(project, "pr42", {"name_suffix": "-pr42"})
    spec = load_spec(project / "services", env="pr42", allow_external=("billing",))
    order_pr = {s.name: s for s in spec.services}["order-pr42"]
    assert [u.destination_name for u in order_pr.upstreams] == ["invoice-pr42", "billing"]


def test_a_suffix_that_makes_a_name_invalid_is_the_env_files_error(project: Path) -> None:
    write_env(project, "bad", {"name_suffix": "_PR"})
    found = problems(project, "bad")
    assert found and all(p.startswith("envs/bad.json: name_suffix: in ") for p in found)
    assert any("'tax_PR' is not a valid name" in p for p in found)


def test_render_a_preview_env_writes_suffixed_jobs_only(project: Path) -> None:
    write_env(project, "pr42", {"name_suffix": "-pr42"})
    result = render(project, "--env", "pr42")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (project / "jobs").iterdir()) == [
        "ingress-pr42.nomad.json", "invoice-pr42.nomad.json", "order-pr42.nomad.json", "tax-pr42.nomad.json"]
    job = json.loads((project / "jobs" / "order-pr42.nomad.json").read_text())["Job"]
    assert job["ID"] == "order-pr42"
    upstreams = job["TaskGroups"][0]["Services"][0]["Connect"]["SidecarService"]["Proxy"]["Upstreams"]
    assert [u["DestinationName"] for u in upstreams] == ["invoice-pr42"]


@pytest.mark.parametrize("broken", [
    {"service": {"name": "api", "port": 80, "connect": {"sidecar_service": []}}},
    {"service": {"name": "api", "port": 80,
                 "connect": {"sidecar_service": {"proxy": {"upstreams": [{"destination_name": ["x"]}, 3]}}}}},
    {"service": {"name": "gw", "port": 80, "kind": "ingress-gateway"},
     "ingress": {"listeners": [{"services": [{"name": {}}, "x"]}, 7]}},
])
def test_a_suffix_on_a_malformed_definition_leaves_the_errors_to_parse(broken: Any) -> None:
    from nomadmesh.definitions.envs import with_suffix

    renamed = with_suffix(broken, "-pr1", {"api", "gw", "x"})
    assert renamed["service"]["name"] == broken["service"]["name"] + "-pr1"
    assert {k: v for k, v in renamed.items() if k != "service"} == {k: v for k, v in broken.items() if k != "service"}


def test_render_reads_nomadmesh_var_from_the_environment_and_var_wins(with_vars: Path) -> None:
    from nomadmesh.pack import BUILTIN_DIR, TEMPLATES_DIR
    (with_vars / TEMPLATES_DIR).mkdir()
    text = (BUILTIN_DIR / "job.nomad.hcl.j2").read_text()
    text = text.replace("meta {\n", "meta {\nimage_tag = [[ v.vars.tag | q ]]\n", 1)
    (with_vars / TEMPLATES_DIR / "job.nomad.hcl.j2").write_text(text)

    def tag(*args: str) -> str:
        result = CliRunner().invoke(cli, ["render", "--services", str(with_vars / "services"), "--out",
                                          str(with_vars / "jobs"), "--format", "json", "order", *args],
                                    env={"NOMADMESH_VAR_owner": "ops", "NOMADMESH_VAR_tag": "from-environ"})
        assert result.exit_code == 0, result.output
        return str(json.loads((with_vars / "jobs" / "order.nomad.json").read_text())["Job"]["Meta"]["image_tag"])

    assert tag() == "from-environ"
    assert tag("--var", "tag=from-var") == "from-var"


def test_render_with_an_unknown_var_exits_2_and_writes_nothing(with_vars: Path) -> None:
    result = render(with_vars, "--var", "owner=x", "--var", "tga=1")
    assert result.exit_code == 2, result.output
    assert "--var tga=1: no such variable; did you mean 'tag'?" in result.output
    assert "Traceback" not in result.output
    assert not (with_vars / "jobs").exists()


# --- `up` takes --env and --var like render/plan/deploy ---------------------------------------------

@pytest.mark.parametrize(("args", "expected"), [
    (("--env", "staging"), "envs/staging.json: does not exist"),
    (("--var", "tga=v2"), "--var tga=v2: no such variable; did you mean 'tag'?"),
], ids=["missing env", "unknown var"])
def test_up_refuses_a_bad_env_or_var_before_starting_anything(
        with_vars: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], expected: str) -> None:
    from support.net import free_port

    monkeypatch.chdir(with_vars)
    write_env(with_vars, "prod", {"variables": {"owner": "ops"}})
    result = CliRunner().invoke(cli, ["up", "--env", "prod", *args, "--nomad-addr", f"http://127.0.0.1:{free_port()}"])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert not (with_vars / ".nomadmesh").exists()  # no agent was started
