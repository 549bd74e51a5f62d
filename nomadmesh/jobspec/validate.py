"""`validate(job)`: the checks Nomad's server runs on register, with Nomad's wording where known.

Works on a canonicalized job (run `canonicalize` first); returns every problem, not only the first.
"""
from __future__ import annotations

import json
import math
import posixpath
import re
from typing import Any

from nomadmesh.durations import go_duration
from nomadmesh.jobspec.gateway import gateway_errors

_JOB_TYPES = ("service", "batch", "system", "sysbatch")
_RESTART_MODES = ("fail", "delay")
_HOOKS = ("prestart", "poststart", "poststop")
_CHECK_TYPES = ("http", "tcp", "grpc", "script")
_MAX_PRIORITY = 100
_SECOND = 1_000_000_000
_RESCHEDULE_MIN_DELAY = 5 * _SECOND
_RESCHEDULE_MIN_INTERVAL = 15 * _SECOND
_DELAY_FUNCTIONS = ("constant", "exponential", "fibonacci")


def validate(job: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    job_id = job.get("ID") or ""
    if not job_id:
        errors.append("Missing job ID")
    elif " " in job_id:
        errors.append("Job ID contains a space")
    elif "\x00" in job_id:
        errors.append("Job ID contains a null character")
    if not job.get("Name"):
        errors.append("Missing job name")
    elif "\x00" in job["Name"]:
        errors.append("Job Name contains a null character")
    if job.get("Type") not in _JOB_TYPES:
        errors.append(f'Invalid job type: "{job.get("Type")}"')
    priority = job.get("Priority")
    if not isinstance(priority, int) or not 1 <= priority <= _MAX_PRIORITY:
        errors.append(f"Job priority must be between [1, {_MAX_PRIORITY}]")
    if not job.get("Datacenters"):
        errors.append("Missing job datacenters")
    if job.get("ParameterizedJob") is not None and not job.get("Dispatched"):
        errors.extend(_parameterized(job))
    errors.extend(_affinities(job, job.get("Type") == "system"))
    groups = job.get("TaskGroups") or []
    if not groups:
        errors.append("Missing job task groups")
    seen: dict[str, int] = {}
    for i, group in enumerate(groups):
        name = group.get("Name") or ""
        if not name:
            errors.append(f"Job task group {i + 1} missing name")
        elif name in seen:
            errors.append(f"Job task group {i + 1} redefines '{name}' from group {seen[name] + 1}")
        else:
            seen[name] = i
        errors.extend(f'Task group {name or i + 1} validation failed: {e}' for e in _group(group, job))
    return errors


def _parameterized(job: dict[str, Any]) -> list[str]:
    """Nomad's Job.Validate for a parameterized job and ParameterizedJobConfig.Validate."""
    errors: list[str] = []
    if job.get("Type") not in ("batch", "sysbatch"):
        errors.append('Parameterized job can only be used with "batch" or "sysbatch" scheduler')
    config = job["ParameterizedJob"]
    if config.get("Payload") not in ("optional", "required", "forbidden"):
        errors.append(f'Unknown payload requirement: "{config.get("Payload")}"')
    both = [k for k in config.get("MetaRequired") or [] if k in (config.get("MetaOptional") or [])]
    if both:
        errors.append("Required and optional meta keys should be disjoint. "
                      f"Following keys exist in both: [{' '.join(both)}]")
    return errors


def _group(g: dict[str, Any], job: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    if (g.get("Count") or 0) < 0:
        errors.append("Task group count can't be negative")
    tasks = g.get("Tasks") or []
    if not tasks:
        errors.append("Missing tasks for task group")
    errors.extend(_affinities(g, job.get("Type") == "system"))
    restart = g.get("RestartPolicy") or {}
    if restart.get("Mode") not in _RESTART_MODES:
        errors.append(f'Unsupported restart mode: "{restart.get("Mode")}"')
    if job.get("Type") == "system" and g.get("ReschedulePolicy") is not None:
        errors.append("System jobs should not have a reschedule policy")
    elif g.get("ReschedulePolicy") is not None:
        errors.extend(_reschedule(g["ReschedulePolicy"]))
    update = g.get("Update")
    if update:
        if update.get("HealthCheck") not in ("checks", "task_states", "manual"):
            errors.append(f'Invalid health check given: "{update.get("HealthCheck")}"')
        if (update.get("MaxParallel") or 0) < 0:
            errors.append("Max parallel can not be less than zero")
        if (update.get("Canary") or 0) < 0:
            errors.append(f"Canary count can not be less than zero: {update['Canary']} < 0")
        if not update.get("Canary") and update.get("AutoPromote"):
            errors.append("Auto Promote requires a Canary count greater than zero")
        if update.get("HealthyDeadline", 0) and update.get("MinHealthyTime", 0) >= update["HealthyDeadline"]:
            errors.append("Minimum healthy time must be less than healthy deadline")
        if update.get("ProgressDeadline") and update.get("HealthyDeadline", 0) > update["ProgressDeadline"]:
            errors.append("Healthy deadline must be less than progress deadline")

    networks = g.get("Networks") or []
    labels = _ports(networks, errors)
    if len(networks) > 1:
        errors.append("Only one network resource may be specified per task group")
    mode = networks[0].get("Mode") if networks else ""

    volumes = g.get("Volumes") or {}
    for vname, req in sorted(volumes.items()):
        problem = _volume(req)
        if problem:
            errors.append(f"Task group volume validation for {vname} failed: {problem}")
    task_names: dict[str, int] = {}
    leaders = 0
    for i, task in enumerate(tasks):
        name = task.get("Name") or ""
        if not name:
            errors.append(f"Task {i + 1} missing name")
        elif name in task_names:
            errors.append(f"Task {i + 1} redefines '{name}' from task {task_names[name] + 1}")
        else:
            task_names[name] = i
        leaders += 1 if task.get("Leader") else 0
        mounts = [f"Volume Mount ({n}) references undefined volume {m.get('Volume') or ''}"
                  for n, m in enumerate(task.get("VolumeMounts") or []) if m.get("Volume") not in volumes]
        errors.extend(f'Task {name or i + 1} validation failed: {e}'
                      for e in _task(task, labels, job.get("Type") == "system") + mounts)
    if leaders > 1:
        errors.append("Only one task may be marked as leader")

    for service in g.get("Services") or []:
        errors.extend(_service(service, g, labels, set(task_names), mode, group_level=True))
    return errors


def _reschedule(r: dict[str, Any]) -> list[str]:
    """Nomad's ReschedulePolicy.Validate: only an enabled policy (attempts or unlimited) is checked."""
    attempts, unlimited = int(r.get("Attempts") or 0), bool(r.get("Unlimited"))
    if not (attempts > 0 or unlimited):
        return []
    errors: list[str] = []
    interval, delay, max_delay = (int(r.get(k) or 0) for k in ("Interval", "Delay", "MaxDelay"))
    fn = r.get("DelayFunction") or ""
    if attempts > 0:
        if interval <= 0:
            errors.append("Interval must be a non zero value if Attempts > 0")
        if unlimited:
            errors.append(f"Reschedule Policy with Attempts = {attempts}, Interval = {go_duration(interval)}, "
                          f"and Unlimited = true is ambiguous")
            errors.append("If Attempts >0, Unlimited cannot also be set to true")
    delays_ok = True
    if delay < _RESCHEDULE_MIN_DELAY:
        errors.append(f"Delay cannot be less than {go_duration(_RESCHEDULE_MIN_DELAY)} (got {go_duration(delay)})")
        delays_ok = False
    if fn not in _DELAY_FUNCTIONS:
        errors.append(f'Invalid delay function "{fn}", must be one of ["constant" "exponential" "fibonacci"]')
        delays_ok = False
    if fn != "constant":
        if max_delay < _RESCHEDULE_MIN_DELAY:  # Nomad prints Delay here, not MaxDelay
            errors.append(f"Max Delay cannot be less than {go_duration(_RESCHEDULE_MIN_DELAY)} "
                          f"(got {go_duration(delay)})")
            delays_ok = False
        if max_delay < delay:
            errors.append(f"Max Delay cannot be less than Delay {go_duration(delay)} (got {go_duration(max_delay)})")
            delays_ok = False
    if not unlimited:
        if interval < _RESCHEDULE_MIN_INTERVAL:
            errors.append(f"Interval cannot be less than {go_duration(_RESCHEDULE_MIN_INTERVAL)} "
                          f"(got {go_duration(interval)})")
        if delays_ok:
            errors.extend(_viable_attempts(attempts, interval, delay, fn, max_delay))
    return errors


def _viable_attempts(attempts: int, interval: int, delay: int, fn: str, max_delay: int) -> list[str]:
    """Nomad's validateDelayParams: can `attempts` reschedules fit in `interval` with these delays?"""
    possible, recommended, valid = 0, 0, True
    if fn == "constant":
        recommended = attempts * delay
        if interval < recommended:
            possible, valid = interval // delay, False
    elif fn == "exponential":
        for i in range(attempts):
            nxt = int(math.pow(2, i)) * delay
            if nxt > max_delay:
                recommended += max_delay
            else:
                recommended = nxt
            if recommended < interval:
                possible += 1
        valid = possible >= attempts
    else:  # fibonacci
        slots, ceiling = [delay, delay], False
        for i in range(2, attempts):
            nxt = slots[i - 1] + (max_delay if ceiling else slots[i - 2])
            if not ceiling and nxt > max_delay:
                nxt, ceiling = max_delay, True
            slots.append(nxt)
        recommended = slots[-1]
        if interval < recommended:
            valid = False
            possible = next((i for i, slot in enumerate(slots) if slot > interval), 0)
    if valid:
        return []
    how = (f'initial delay {go_duration(delay)} and delay function "{fn}"' if fn == "constant" else
           f'initial delay {go_duration(delay)}, delay function "{fn}", and delay ceiling {go_duration(max_delay)}')
    return [f"Nomad can only make {max(possible, 0)} attempts in {go_duration(interval)} with {how}",
            f"Set the interval to at least {go_duration(round(recommended / _SECOND) * _SECOND)} "
            f"to accommodate {attempts} attempts"]


def _ports(networks: list[dict[str, Any]], errors: list[str]) -> set[str]:
    labels: set[str] = set()
    statics: dict[int, str] = {}
    for network in networks:
        for port in (network.get("ReservedPorts") or []) + (network.get("DynamicPorts") or []):
            label = port.get("Label") or ""
            if not re.fullmatch(r"[a-zA-Z0-9_]+", label):
                errors.append(f'Port label "{label}" must only contain letters, numbers and underscores')
            if label in labels:
                errors.append(f'Port label "{label}" already in use')
            labels.add(label)
            value = port.get("Value") or 0
            if port in (network.get("ReservedPorts") or []):
                if not 0 < value <= 65535:
                    errors.append(f'Port "{label}" has an invalid static port {value}')
                elif value in statics:
                    errors.append(f'Static port {value} already reserved by "{statics[value]}"')
                else:
                    statics[value] = label
            if not -1 <= (port.get("To") or 0) <= 65535:
                errors.append(f'Port "{label}" has an invalid "to" port {port.get("To")}')
    return labels


def _volume(req: dict[str, Any]) -> str | None:
    """Nomad's VolumeRequest.Validate, for what the dev agent takes (host volumes; CSI is refused)."""
    if req.get("Type") not in ("host", "csi"):
        return f"volume has unrecognized type {req.get('Type') or ''}"
    problems = []
    if not req.get("Source"):
        problems.append("volume has an empty source")
    if req.get("Type") == "host" and req.get("AccessMode") not in ("", "single-node-reader-only",
                                                                   "single-node-writer",
                                                                   "single-node-single-writer",
                                                                   "single-node-multi-writer"):
        problems.append(f"host volumes cannot be mounted with {req.get('AccessMode')} access mode")
    if req.get("AccessMode") == "single-node-reader-only" and not req.get("ReadOnly"):
        problems.append("single-node-reader-only volumes must be read-only")
    if not problems:
        return None
    points = "\n\t".join(f"* {p}" for p in problems)  # go-multierror's text
    return f"{len(problems)} error{'s' if len(problems) != 1 else ''} occurred:\n\t{points}\n\n"


def _task(t: dict[str, Any], labels: set[str], system: bool = False) -> list[str]:
    errors: list[str] = []
    errors.extend(_affinities(t, system))
    if not t.get("Driver"):
        errors.append("Missing task driver")
    resources = t.get("Resources") or {}
    if (resources.get("CPU") or 0) < 1 and not resources.get("Cores"):
        errors.append(f"minimum CPU value is 1; got {int(resources.get('CPU') or 0)}")
    if (resources.get("MemoryMB") or 0) < 10:
        errors.append(f"minimum MemoryMB value is 10; got {int(resources.get('MemoryMB') or 0)}")
    if (t.get("KillTimeout") or 0) < 0:
        errors.append("KillTimeout must be a positive value")
    lifecycle = t.get("Lifecycle")
    if lifecycle and lifecycle.get("Hook") not in _HOOKS:
        errors.append(f'invalid hook: {lifecycle.get("Hook")}')
    destinations: dict[str, int] = {}
    for i, template in enumerate(t.get("Templates") or [], 1):
        errors.extend(f"Template {i} validation failed: {e}" for e in _template(template))
        dest = template.get("DestPath") or ""
        if dest in destinations:
            errors.append(f"Template {i} has same destination as {destinations[dest]}")
        else:
            destinations[dest] = i
    for i, artifact in enumerate(t.get("Artifacts") or [], 1):
        if not artifact.get("GetterSource"):
            errors.append("Artifact must have a source")
        errors.extend(f"Artifact {i} validation failed: {e}" for e in _artifact(artifact))
    payload_file = (t.get("DispatchPayload") or {}).get("File") or ""
    if posixpath.normpath("task/local/" + payload_file).startswith("..") or "\x00" in payload_file:
        errors.append("Dispatch Payload validation failed: destination escapes allocation directory")
    for service in t.get("Services") or []:
        errors.extend(_service(service, {}, labels, set(), "", group_level=False))
    return errors


_AFFINITY_NEEDS_VALUE = ("=", "==", "is", "!=", "not", "<", "<=", ">", ">=")


def _affinities(owner: dict[str, Any], system: bool) -> list[str]:
    """Nomad's Affinity.Validate for each of a job's, group's or task's affinities."""
    affinities = owner.get("Affinities") or []
    if system and affinities:
        return ["System jobs may not have an affinity block"]
    errors: list[str] = []
    for i, a in enumerate(affinities, 1):
        errors.extend(f"Affinity {i} validation failed: {e}" for e in _affinity(a))
    return errors


def _affinity(a: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    op, rtarget = a.get("Operand") or "", a.get("RTarget") or ""
    if not op:
        errors.append("Missing affinity operand")
    if op in ("set_contains", "set_contains_any", "set_contains_all"):
        if not rtarget:
            errors.append("Set contains operators require an RTarget")
    elif op == "regexp":
        try:
            re.compile(rtarget)
        except re.error as e:
            errors.append(f"Regular expression failed to compile: {e}")
    elif op in ("version", "semver"):
        pass  # kept for Nomad to judge; the dev agent's scheduler ignores affinities (one node)
    elif op in _AFFINITY_NEEDS_VALUE:
        if not rtarget:
            errors.append(f"Operator {json.dumps(op)} requires an RTarget")
    elif op:
        errors.append(f"Unknown affinity operator {json.dumps(op)}")
    if not a.get("LTarget"):
        errors.append("No LTarget provided but is required")
    weight = a.get("Weight") or 0
    if weight == 0:
        errors.append("Affinity weight cannot be zero")
    if not -100 <= weight <= 100:
        errors.append("Affinity weight must be within the range [-100,100]")
    return errors


def _artifact(a: dict[str, Any]) -> list[str]:
    """Nomad's TaskArtifact.Validate: the mode, and a destination that stays in the allocation."""
    errors: list[str] = []
    mode = a.get("GetterMode") or "any"
    if mode not in ("any", "file", "dir"):
        errors.append(f"invalid artifact mode {json.dumps(mode)}; must be one of: any, file, dir")
    placed = posixpath.normpath("/alloc-dir/alloc-id/task/" + (a.get("RelativeDest") or ""))
    if posixpath.relpath(placed, "/alloc-dir/alloc-id").startswith(".."):
        errors.append("destination escapes allocation directory")
    return errors


def _template(t: dict[str, Any]) -> list[str]:
    """Nomad's Template.Validate, in its words."""
    errors: list[str] = []
    if not t.get("SourcePath") and not t.get("EmbeddedTmpl"):
        errors.append("Must specify a source path or have an embedded template")
    dest = t.get("DestPath") or ""
    if not dest:
        errors.append("Must specify a destination for the template")
    # escapingfs.PathEscapesAllocViaRelative("task", dest): joined (Go's Join concatenates, even an
    # absolute dest) under <alloc>/task, the result may not climb out of <alloc>.
    placed = posixpath.normpath("/alloc-dir/alloc-id/task/" + dest)
    if posixpath.relpath(placed, "/alloc-dir/alloc-id").startswith(".."):
        errors.append("destination escapes allocation directory")
    mode = t.get("ChangeMode")
    if mode == "signal":
        if not t.get("ChangeSignal"):
            errors.append("Must specify signal value when change mode is signal")
        if t.get("Envvars"):
            errors.append("cannot use signals with env var templates")
    elif mode == "script":
        if not t.get("ChangeScript"):
            errors.append("must specify change script configuration value when change mode is script")
    elif mode not in ("noop", "restart"):
        errors.append("Invalid change mode. Must be one of the following: noop, signal, script, restart")
    if (t.get("Splay") or 0) < 0:
        errors.append("Must specify positive splay value")
    perms = t.get("Perms") or ""
    if perms and not (perms.isascii() and perms.isdigit() and all(c in "01234567" for c in perms)):
        errors.append(f'Failed to parse "{perms}" as octal: strconv.ParseUint: parsing "{perms}": invalid syntax')
    elif perms and int(perms, 8) > 0o7777:
        errors.append(f'Failed to parse "{perms}" as octal: strconv.ParseUint: parsing "{perms}": value out of range')
    return errors


def _service(s: dict[str, Any], g: dict[str, Any], labels: set[str], tasks: set[str], mode: str,
             group_level: bool) -> list[str]:
    errors: list[str] = []
    name = s.get("Name") or ""
    where = f'Service "{name}"'
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9-]*|\$\{.*\}.*|.*\$\{.*", name):
        errors.append(f"{where} must be valid per RFC 1123 and can contain only alphanumeric "
                      "characters or dashes")
    if s.get("Provider") not in ("consul", "nomad"):
        errors.append(f'{where} has an invalid provider "{s.get("Provider")}"')
    port = s.get("PortLabel") or ""
    if group_level and port and not port.isdigit() and labels is not None and port not in labels:
        errors.append(f'{where} port label "{port}" does not exist in the group network')
    connect = s.get("Connect")
    if connect and (connect.get("SidecarService") is not None or connect.get("Native")):
        if not group_level:
            errors.append(f"{where} uses Consul Connect, which is only allowed in a group service block")
        elif mode != "bridge" and not str(mode).startswith("cni/"):
            errors.append(f'Consul Connect sidecar requires bridge network, found "{mode or "host"}" in '
                          f'group "{g.get("Name")}"')
        if connect.get("SidecarService") is not None and name != name.lower():
            errors.append(f'Consul Connect service name "{name}" in group "{g.get("Name")}" must not '
                          "contain uppercase characters")
        if connect.get("Native") and connect.get("SidecarService") is not None:
            errors.append(f"{where}: Consul Connect must be exclusively native or sidecar")
    errors.extend(gateway_errors(s, g, mode, group_level))
    if group_level and s.get("TaskName") and s["TaskName"] not in tasks:
        errors.append(f'{where} refers to task "{s["TaskName"]}", which is not in the group')
    sidecar = (connect or {}).get("SidecarService") is not None
    for check in s.get("Checks") or []:
        if sidecar and check.get("Type") == "tcp" and (s.get("Provider") or "consul") == "consul":
            # Consul cannot reach the app inside the allocation's namespace (hashicorp/nomad#6141).
            errors.append(f'{where} check "{check.get("Name") or "tcp"}" invalid: '
                          "tcp checks are not valid for Connect enabled services")
            continue
        errors.extend(_check(check, where))
    return errors


def _check(c: dict[str, Any], where: str) -> list[str]:
    errors: list[str] = []
    kind = c.get("Type") or ""
    name = c.get("Name") or kind
    if kind not in _CHECK_TYPES:
        errors.append(f'{where} check "{name}": invalid type "{kind}"')
        return errors
    if (c.get("Interval") or 0) < _SECOND:
        errors.append(f'{where} check "{name}": minimum check interval is 1s')
    if kind in ("http", "tcp", "grpc") and (c.get("Timeout") or 0) < _SECOND:
        errors.append(f'{where} check "{name}": minimum check timeout is 1s')
    if kind == "http" and not c.get("Path"):
        errors.append(f'{where} check "{name}": http type must have http path')
    if kind == "script" and not c.get("Command"):
        errors.append(f'{where} check "{name}": script type must have a valid script path')
    if c.get("Expose") and kind not in ("http", "grpc"):
        errors.append(f'{where} check "{name}": expose may only be set on http or grpc checks')
    return errors
