"""`nomadmesh intent allow|deny|delete|list|check`: who may call whom, on any Consul.

Thin: parse and validate names, call `nomadmesh.deploy.intentions`, print like the Consul CLI.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from nomadmesh.cli.options import json_option, target_options
from nomadmesh.errors import NomadMeshError

if TYPE_CHECKING:  # annotations only: commands import their libraries lazily, to keep --help fast
    import consul

    from nomadmesh.deploy.target import Target
    from nomadmesh.mesh.intentions import Decision, Intention, Permission

F = TypeVar("F", bound=Callable[..., Any])
WILDCARD = "*"


class CheckFailed(NomadMeshError):
    """A checking command could not check (bad target, unreachable): exit 2, so 1 keeps meaning "no"."""

    exit_code = 2


def exit_2_on_error(f: F) -> F:
    """For commands whose exit 1 is an answer (Denied, findings): any other failure exits 2."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except NomadMeshError as e:
            if e.exit_code == 2:
                raise
            raise CheckFailed(str(e)) from e

    return wrapper  # type: ignore[return-value]


def _name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from nomadmesh.definitions.fields import NAME, NAME_RULE

    if value != WILDCARD and not NAME.match(value):
        raise click.BadParameter(f"{value!r} is not a valid service name: {NAME_RULE} (or * for any)")
    return value


def _description(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from nomadmesh.mesh.intention_rules import META_VALUE_MAX_LENGTH

    if value is not None and len(value) > META_VALUE_MAX_LENGTH:  # Consul refuses the entry otherwise
        raise click.BadParameter(f"at most {META_VALUE_MAX_LENGTH} characters (Consul's limit), not {len(value)}")
    return value


_source = click.argument("source", metavar="SRC", callback=_name)
_destination = click.argument("destination", metavar="DST", callback=_name)

default_policy_option = click.option(
    "--default-policy", type=click.Choice(["allow", "deny"]), default=None,
    help="Policy for pairs no intention matches.  [default: what Consul's own check answers]")


def _client(target: Target) -> consul.Consul:
    from nomadmesh.deploy.target import consul_client

    return consul_client(target)


def rule_text(decision: Decision) -> str:
    """The deciding rule: `invoice => tax (deny)`, or `default policy (allow)`."""
    return str(decision.reason)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart (the Consul CLI's list style)."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [headers, *rows]]
    return "\n".join(lines) + "\n"


@click.group("intent")
def intent_group() -> None:
    """Manage intentions (who may call whom) as Consul service-intentions config entries.

    SRC and DST are service names, or * for any service. Writes use check-and-set and keep the
    sources other tools wrote. The Consul target comes from CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN,
    CONSUL_CACERT... like the Consul CLI, or --consul-addr.
    """


def _permissions(action: str, path_exact: str | None, path_prefix: str | None, path_regex: str | None,
                 method: tuple[str, ...], header: tuple[str, ...], permission: tuple[str, ...]) -> list[Any]:
    """The L7 permissions the options describe (Consul's JSON shape), in evaluation order; bad ones exit 2."""
    from nomadmesh.mesh import permission_input as perm

    try:
        first = perm.from_flags(action, path_exact, path_prefix, path_regex, method, header)
        more = [perm.from_spec(action, spec, f"--permission {n}") for n, spec in enumerate(permission, 1)]
    except perm.BadPermission as e:
        raise click.UsageError(str(e)) from None
    return ([first] if first else []) + more


def _write(action: str) -> Callable[..., None]:
    def command(target: Target, source: str, destination: str, description: str | None, replace: bool,
                **l7: Any) -> None:
        from nomadmesh.deploy import intentions as di
        from nomadmesh.mesh.intentions import permissions_from_json

        permissions = permissions_from_json(_permissions(action, **l7))
        if permissions and destination == WILDCARD:  # Consul's rule, said before anything is sent
            raise click.UsageError("L7 permissions cannot be written for the wildcard destination *")
        consul = _client(target)
        try:
            change = di.set_intention(consul, source, destination, None if permissions else action, description,
                                      permissions, replace=replace)
        except di.ReplaceRefused as e:
            raise click.ClickException(f"{e}; pass --replace to replace it") from None
        unknown = sorted(n for n in {source, destination} - {WILDCARD} if n not in di.registered_services(consul))
        for name in unknown:
            click.echo(f"warning: no service named {name!r} is registered in Consul at {target.consul.url}; "
                       "the intention is written anyway", err=True)
        rule = f"{source} => {destination}"
        what = "L7 permissions" if permissions else action
        if change.kind == "created":
            click.echo(f"Created: {rule} ({what})")
        elif change.kind == "updated":
            was = change.previous.action if change.previous and change.previous.action else "L7 permissions"
            click.echo(f"Updated: {rule} ({what}, was {was})")
        else:
            click.echo(f"Unchanged: {rule} ({what})")
        for p in change.intention.permissions:
            click.echo(f"  {_permission_line(p)}")

    return command


def _l7_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--path-exact", metavar="PATH", default=None, help="L7: requests for exactly PATH."),
        click.option("--path-prefix", metavar="PREFIX", default=None,
                     help="L7: requests whose path starts with PREFIX."),
        click.option("--path-regex", metavar="RE2", default=None,
                     help="L7: requests whose whole path matches RE2 (checked as Envoy would load it)."),
        click.option("--method", multiple=True, metavar="METHOD",
                     help="L7: requests with METHOD (repeatable: any of)."),
        click.option("--header", multiple=True, metavar="NAME[=VALUE]",
                     help="L7: requests with header NAME equal to VALUE, or present without =VALUE (repeatable: all)."),
        click.option("--permission", multiple=True, metavar="KEY=VALUE,...",
                     help="L7: one more permission, tried after the flags' one (repeatable, in order). Keys: "
                          "path-exact, path-prefix, path-regex, method, header, action; \\, is a literal comma."),
        click.option("--replace", is_flag=True,
                     help="Allow turning an L7 source into a plain one, or the reverse (refused otherwise)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _write_command(action: str, example: str) -> click.Command:
    doc = (f"{'Let SRC call' if action == 'allow' else 'Forbid SRC to call'} DST: write `{action}` for SRC in DST's "
           f"service-intentions entry (replacing what SRC had there).\n\n"
           f"With --path-*, --method, --header or --permission, SRC gets L7 permissions instead: HTTP "
           f"requests matching a permission are {action}ed (tried in order, the flags' permission first; "
           f"the first match decides, unmatched requests get the default policy). All parts of one "
           f"permission must match. DST needs an HTTP protocol (service-defaults) for Consul to accept them. "
           f"Changing a plain allow or deny into L7 permissions, or the reverse, needs --replace.\n\n"
           f"Prints Created, Updated or Unchanged. A name no service is registered under gets a "
           f"warning, and the intention is written anyway (Consul allows that).\n\n"
           f"Examples:\n\n\b\n    {example}\n\n\b\n"
           f"    nomadmesh intent {action} web api --path-prefix /public --method GET --method HEAD\n\n\b\n"
           f"    nomadmesh intent {action} web api --path-exact /health \\\n"
           f"        --permission 'path-prefix=/admin,header=X-Role=ops,action=deny'")
    command = _write(action)
    command.__doc__ = doc
    decorated = target_options(command)
    decorated = _l7_options(decorated)
    decorated = click.option("--description", default=None, metavar="TEXT", callback=_description,
                             help="Free text shown with the intention (default: keep the current one).")(decorated)
    return click.command(action, help=doc)(_source(_destination(decorated)))


intent_group.add_command(_write_command("allow", "nomadmesh intent allow order invoice --description 'checkout'"))
intent_group.add_command(_write_command("deny", "nomadmesh intent deny invoice tax"))


@intent_group.command("delete")
@_source
@_destination
@target_options
def delete_command(target: Target, source: str, destination: str) -> None:
    """Remove the intention SRC => DST (the entry goes when it has no source left).

    Exit 1 if there is no such intention.

    Example:

        nomadmesh intent delete invoice tax
    """
    from nomadmesh.deploy import intentions as di

    client = _client(target)
    if not di.delete_intention(client, source, destination):
        raise click.ClickException(f"no intention {source} => {destination} in Consul at {target.consul.url}")
    # Deleting an operator's override of a deploy's own source gives the deploy's back (see mesh/policy.py).
    back = di.get_intention(client, source, destination)
    if back is None:
        click.echo(f"Deleted: {source} => {destination}")
    else:
        click.echo(f"Deleted: {source} => {destination}; the rule a deploy wrote is back: "
                   f"{di.describe(back)}{f' ({back.description})' if back.description else ''}")


def _permission_line(p: Permission) -> str:
    from nomadmesh.mesh.intentions import permission_text

    return permission_text(p)


def _action(i: Intention) -> str:
    return "l7" if i.is_l7 else str(i.action)


def _intention_json(i: Intention) -> dict[str, Any]:
    from nomadmesh.mesh.intentions import source_to_json

    doc = {"source": i.source, "destination": i.destination, "action": _action(i),
           "precedence": i.precedence, "description": i.description}
    if i.is_l7:
        doc["permissions"] = source_to_json(i)["Permissions"]
    return doc


@intent_group.command("list")
@json_option
@target_options
def list_command(target: Target, as_json: bool) -> None:
    """List every intention in the order Consul evaluates them (highest precedence first).

    Precedence: exact => exact 9, * => exact 8, exact => * 6, * => * 5. The action is allow,
    deny, or l7 (HTTP permissions decide per request; --json shows them).

    Example:

        nomadmesh intent list --json
    """
    from nomadmesh.deploy import intentions as di

    found = di.list_intentions(_client(target))
    if as_json:
        click.echo(json.dumps([_intention_json(i) for i in found], indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo("No intentions.")
        return
    rows = [(i.source, i.destination, _action(i), str(i.precedence), i.description) for i in found]
    lines = table(("SOURCE", "DESTINATION", "ACTION", "PRECEDENCE", "DESCRIPTION"), rows).splitlines()
    click.echo(lines[0])
    for line, i in zip(lines[1:], found, strict=True):
        click.echo(line)
        for p in i.permissions:  # L7: the permissions under their source, in evaluation order
            click.echo(f"  {_permission_line(p)}")


@intent_group.command("check")
@exit_2_on_error
@_source
@_destination
@default_policy_option
@json_option
@target_options
def check_command(target: Target, source: str, destination: str, default_policy: str | None, as_json: bool) -> None:
    """Say whether SRC may call DST (Allowed or Denied) and which rule decided.

    Exit 0 Allowed, 1 Denied, 2 bad input or Consul unreachable. An L7 intention counts as Denied
    here (as in Consul's check): its HTTP permissions decide per request.

    Example:

        nomadmesh intent check invoice tax || echo "invoice may not call tax"
    """
    from nomadmesh.deploy import intentions as di

    consul = _client(target)
    decision = di.check_intention(consul, source, destination, di.load_default_policy(consul, default_policy))
    verdict = "Allowed" if decision.allowed else "Denied"
    l7 = decision.intention.permissions if decision.intention is not None else ()
    if as_json:
        doc: dict[str, Any] = {"source": source, "destination": destination, "allowed": decision.allowed,
                               "rule": rule_text(decision)}
        if l7:
            from nomadmesh.mesh.intentions import permissions_to_json

            doc["permissions"] = permissions_to_json(l7)
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(verdict)
        click.echo(f"rule: {rule_text(decision)}")
        for p in l7:
            click.echo(f"  {_permission_line(p)}")
    if not decision.allowed:
        raise click.exceptions.Exit(1)
