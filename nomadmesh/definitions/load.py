"""The I/O edge of spec: find the definition files, read and parse JSON, then hand the documents
to the pure rules (`parse.py`, `project.py`, `validate.py`) and build the frozen `Spec`.

No network. Every problem in every file is collected; `SpecError` carries all of them.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nomadmesh.definitions.envs import (
    ENVS_DIR,
    Env,
    blame_env,
    blame_suffix,
    deep_merge,
    env_name_ok,
    parse_env,
    unknown_services,
    with_suffix,
)
from nomadmesh.definitions.model import Project, Spec
from nomadmesh.definitions.parse import Parsed, parse_service
from nomadmesh.definitions.project import parse_project, project_name
from nomadmesh.definitions.traffic import traffic_problems
from nomadmesh.definitions.validate import validate_mesh
from nomadmesh.definitions.variables import resolve
from nomadmesh.errors import Problem, SpecError
from nomadmesh.pack import TEMPLATES_DIR, choosable

SERVICE_FILE = "service.json"
PROJECT_FILE = "nomadmesh.json"


class _Object(dict[str, Any]):
    """A JSON object that remembers keys it saw twice (json.loads silently keeps the last)."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice: dict[str, None] = {}  # ordered set
        for key, _ in pairs:
            if key in seen:
                twice[key] = None
            seen.add(key)
        obj.duplicates = tuple(twice)
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_json(path: Path, label: str) -> tuple[Any, list[Problem]]:
    """Parse one JSON file; problems say where (line and column) it is malformed."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        return None, [Problem(label, "", f"cannot be read: {e.strerror or e}")]
    except UnicodeDecodeError as e:
        return None, [Problem(label, "", f"is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})")]
    try:
        return json.loads(text, object_pairs_hook=_object, parse_constant=_no_constant), []
    except json.JSONDecodeError as e:
        return None, [Problem(label, "", f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}")]
    except ValueError as e:  # NaN / Infinity
        return None, [Problem(label, "", f"invalid JSON: {e}")]
    except RecursionError:
        return None, [Problem(label, "", "invalid JSON: nested too deeply")]


def find_service_files(services_dir: Path) -> list[Path]:
    """Every `<services_dir>/<name>/service.json`, sorted by folder name."""
    return sorted(p for p in Path(services_dir).glob(f"*/{SERVICE_FILE}") if p.is_file())


def load_spec(
    services_dir: Path, project_file: Path | None = None, allow_external: Iterable[str] = (),
    env: str | None = None, variables: Sequence[str] = (), environ: Mapping[str, str] | None = None,
) -> Spec:
    """find → parse → validate → frozen model. Raises SpecError with every problem found.

    `project_file` defaults to `<services_dir>/../nomadmesh.json` and is optional only then.
    `allow_external` names upstreams that are not defined in the folder but may be called.
    `env` names `envs/<env>.json` beside the project file, laid over the project and services.
    `variables` (`NAME=VALUE`, from --var) and `environ` (its NOMADMESH_VAR_*) set template variables.
    """
    services_dir = Path(services_dir)
    problems: list[Problem] = []
    project_path = Path(project_file) if project_file is not None else services_dir.parent / PROJECT_FILE
    overlay, env_problems = _load_env(project_path.parent, env)
    problems += env_problems
    project, project_problems = _load_project(services_dir, project_file, overlay)
    problems += project_problems
    values, var_problems = resolve(project.declared, project.source or str(project_path),
                                   overlay.variables if overlay else None, overlay.label if overlay else "",
                                   environ, variables)
    problems += var_problems
    project = dataclasses.replace(project, vars=tuple(sorted(values.items())),
                                  name=project_name(project.name, env))
    named: set[str] = set()
    parsed = []
    unreadable = []  # folders whose service name could not be read
    if not services_dir.is_dir():
        what = "is not a folder" if services_dir.exists() else "does not exist"
        problems.append(Problem(str(services_dir), "", f"{what}; expected a folder of <name>/{SERVICE_FILE}"))
    else:
        files = find_service_files(services_dir)
        if not files:
            problems.append(Problem(str(services_dir), "", f"has no service definitions (<name>/{SERVICE_FILE})"))
        docs = []
        for path in files:
            doc, read_problems = read_json(path, str(path))
            problems += read_problems
            docs.append((path, doc, read_problems))
        named = {_service_name(doc) or "" for _, doc, _ in docs}
        for path, doc, read_problems in docs:
            name = _service_name(doc)
            override = overlay.services.get(name) if overlay is not None and name else None
            if override is not None:
                doc = deep_merge(doc, override)
            if overlay is not None and overlay.name_suffix:
                doc = with_suffix(doc, overlay.name_suffix, named)
            one = None if read_problems else parse_service(doc, path, str(path))
            if one is not None and override is not None and overlay is not None:
                one = dataclasses.replace(one, problems=tuple(
                    blame_env(list(one.problems), override, overlay.label, f"services.{name}")))
            if one is not None and overlay is not None and overlay.name_suffix and name:
                one = dataclasses.replace(one, problems=tuple(blame_suffix(list(one.problems), overlay, name)))
            if one is not None:
                parsed.append(one)
            if one is None or one.service is None:
                unreadable.append(path.parent.name)
    if overlay is not None and services_dir.is_dir():
        problems += unknown_services(overlay, named - {""})
    for p in parsed:
        problems += p.problems
    problems += _unknown_templates(parsed, project.templates_dir)
    external = {*project.external_services, *allow_external}
    problems += validate_mesh(parsed, external, str(services_dir), unreadable)

    problems += _rule_problems(project, parsed, external)
    problems += traffic_problems((p.service for p in parsed if p.service is not None), external)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise SpecError(_by_file(errors))
    services = sorted((p.service for p in parsed if p.service is not None), key=lambda s: s.name)
    warnings = tuple(str(p) for p in _by_file([p for p in problems if p.severity == "warning"]))
    root = str(services_dir.resolve().parent)  # where nomadmesh.json sits by default
    return Spec(project=project, services=tuple(services), warnings=warnings, root=root)


def _by_file(problems: list[Problem]) -> list[Problem]:
    # Stable: within a file, problems keep the order they were found in (top to bottom).
    return sorted(problems, key=lambda p: p.file)


def _service_name(doc: Any) -> str | None:
    # The name an env file's "services" key uses; parse_service reports a missing or bad one.
    service = doc.get("service") if isinstance(doc, dict) else None
    name = service.get("name") if isinstance(service, dict) else None
    return name if isinstance(name, str) else None


def _load_env(root: Path, env: str | None) -> tuple[Env | None, list[Problem]]:
    """`<root>/envs/<env>.json`, or None without --env. A missing file is an error, never ignored."""
    if env is None:
        return None, []
    label = f"{ENVS_DIR}/{env}.json"
    if not env_name_ok(env):
        return Env(label), [Problem(label, "", f"{env!r} is not an environment name: letters, digits, '-', '_', '.'")]
    path = root / ENVS_DIR / f"{env}.json"
    if not path.is_file():
        have = sorted(p.stem for p in (root / ENVS_DIR).glob("*.json"))
        listed = ", ".join(have) or "(none)"
        return Env(label), [Problem(label, "", f"does not exist (in {root}); environments: {listed}")]
    doc, problems = read_json(path, label)
    if problems:
        return Env(label), problems
    return parse_env(doc, label)


def _load_project(services_dir: Path, project_file: Path | None,
                  overlay: Env | None = None) -> tuple[Project, list[Problem]]:
    path = Path(project_file) if project_file is not None else services_dir.parent / PROJECT_FILE
    # The project root holds nomadmesh.json, services/ and the optional templates/ folder.
    templates = path.parent / TEMPLATES_DIR
    templates_dir = str(templates) if templates.is_dir() else None
    override = overlay.project if overlay is not None else {}
    if project_file is None and not path.exists() and not override:
        return Project(templates_dir=templates_dir), []
    doc: Any = {}
    if path.exists() or project_file is not None:
        doc, problems = read_json(path, str(path))
        if problems:
            return Project(source=str(path), templates_dir=templates_dir), problems
    if override and overlay is not None:
        project, problems = parse_project(deep_merge(doc, override), str(path))
        problems = blame_env(problems, override, overlay.label, "project")
    else:
        project, problems = parse_project(doc, str(path))
    return dataclasses.replace(project, templates_dir=templates_dir), problems


def _unknown_templates(parsed: list[Parsed], templates_dir: str | None) -> list[Problem]:
    """A service's `nomad.template` must be in the project's templates/ or the built-in pack."""
    available = choosable(templates_dir)
    problems = []
    for service in (p.service for p in parsed):
        template = service.run.template if service is not None else None
        if service is not None and template is not None and template not in available:
            where = f"{templates_dir} or the built-in pack" if templates_dir else "the built-in pack"
            problems.append(Problem(service.source, "nomad.template",
                                    f"no template {template!r} in {where}; available: {', '.join(available)}"))
    return problems


def _rule_problems(project: Project, parsed: list[Parsed], external: set[str]) -> list[Problem]:
    """nomadmesh.json `intentions` against the services: unknown names warn (Consul accepts an
    intention for a service not registered yet); L7 permissions on a tcp service are an error
    (Consul refuses them: the proxy cannot read HTTP on a tcp listener)."""
    services = {p.service.name: p.service for p in parsed if p.service is not None}
    label = project.source or PROJECT_FILE
    problems = []
    for rule in project.intentions:
        for end in ("source", "destination"):
            name = getattr(rule, end)
            if name != "*" and name not in services and name not in external:
                problems.append(Problem(label, f"{rule.where}.{end}", f"{name!r} is not a service defined here "
                                        "or in external_services (the intention is written anyway)", "warning"))
        target = services.get(rule.destination)
        if rule.permissions and target is not None and (target.protocol or "tcp") == "tcp":
            problems.append(Problem(label, f"{rule.where}.permissions",
                                    f"L7 permissions need an HTTP protocol, but {rule.destination!r} is tcp; set "
                                    "service.connect.sidecar_service.proxy.config.protocol to http, http2 or grpc "
                                    f"in {target.source}"))
    return problems
