"""L7 permissions as an operator writes them (`intent allow|deny` options, the UI's edge panel) → Consul's
Permissions shape. Pure: strings in, dicts out.

Two ways to say a permission, which can be combined:

    --path-prefix /public --method GET --header X-Team=blue     one permission from the flags
    --permission 'path-prefix=/admin,method=POST,action=deny'   one more per --permission

A permission matches a request when all of its parts match (path, any of its methods, every
header). Consul tries the permissions in order, the flags' first, then each --permission as
given; the first match decides, and a request none matches gets the default intention policy.

In a --permission, parts are KEY=VALUE separated by commas (`\\,` is a literal comma, for a
regex like `a{1\\,3}`); keys: path-exact, path-prefix, path-regex, method (repeatable), header
(repeatable, NAME=VALUE for an exact value or NAME for "present"), action (allow or deny; the
command's own by default).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from nomadmesh.mesh.intention_rules import HTTP_METHODS, InvalidIntentions, validate_permission
from nomadmesh.mesh.regex import regex_problem

PATH_KEYS = {"path-exact": "PathExact", "path-prefix": "PathPrefix", "path-regex": "PathRegex"}
KEYS = (*PATH_KEYS, "method", "header", "action")
# RFC 9110 field-name token (an optional leading ':' for HTTP/2 pseudo-headers such as :authority).
_HEADER_NAME = re.compile(r":?[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNESCAPED_COMMA = re.compile(r"(?<!\\),")


class BadPermission(ValueError):
    """A permission the operator wrote cannot be sent; the message says which part and why."""


def header_match(text: str, where: str) -> dict[str, Any]:
    """`NAME=VALUE` → an exact match, `NAME` → present."""
    name, sep, value = text.partition("=")
    if not _HEADER_NAME.fullmatch(name):
        raise BadPermission(f"{where}: {name!r} is not an HTTP header name (letters, digits and "
                               "!#$%&'*+-.^_`|~, no spaces)")
    if sep and not value:  # Consul reads an empty Exact as no match at all and refuses the header
        raise BadPermission(f"{where}: header {text!r} has an empty value; give NAME=VALUE, or NAME alone "
                            "to require the header to be present")
    return {"Name": name, "Exact": value} if sep else {"Name": name, "Present": True}


def permission(action: str, path: tuple[str, str] | None, methods: Sequence[str], headers: Sequence[str],
               where: str) -> dict[str, Any]:
    """One permission in Consul's JSON shape, checked the way Consul and Envoy will check it.

    `path` is (key, value) with key one of PATH_KEYS ("path-prefix", "/public").
    """
    http: dict[str, Any] = {}
    if path is not None:
        key, value = path
        if key != "path-regex" and not value.startswith("/"):
            raise BadPermission(f"{where}: {key} {value!r} must start with '/'")
        if key == "path-regex":
            problem = regex_problem(value)
            if problem:
                raise BadPermission(f"{where}: path-regex {value!r}: {problem}")
        http[PATH_KEYS[key]] = value
    upper = [m.upper() for m in methods]
    for m in upper:
        if m not in HTTP_METHODS:
            raise BadPermission(f"{where}: method {m!r} is not one of {', '.join(HTTP_METHODS)}")
    if len(set(upper)) != len(upper):
        raise BadPermission(f"{where}: a method is listed twice ({', '.join(upper)})")
    if upper:
        http["Methods"] = upper
    if headers:
        http["Header"] = [header_match(h, where) for h in headers]
    if not http:
        raise BadPermission(f"{where}: says nothing to match (give a path, a method or a header)")
    out = {"Action": action, "HTTP": http}
    try:  # what is left of Consul's own rules (one path kind, header shape): a safety net
        validate_permission(where, out)
    except InvalidIntentions as e:
        raise BadPermission(str(e)) from None
    return out


def from_flags(action: str, path_exact: str | None, path_prefix: str | None, path_regex: str | None,
               methods: Sequence[str], headers: Sequence[str]) -> dict[str, Any] | None:
    """The permission the --path-*/--method/--header flags describe, or None when none is given."""
    paths = [(k, v) for k, v in (("path-exact", path_exact), ("path-prefix", path_prefix),
                                 ("path-regex", path_regex)) if v is not None]
    if len(paths) > 1:
        raise BadPermission("give at most one of --path-exact, --path-prefix, --path-regex "
                               "(use --permission for more rules)")
    if not paths and not methods and not headers:
        return None
    return permission(action, paths[0] if paths else None, methods, headers, "the --path/--method/--header flags")


def from_spec(default_action: str, spec: str, where: str) -> dict[str, Any]:
    """One `--permission 'path-prefix=/public,method=GET'` value."""
    paths: list[tuple[str, str]] = []
    methods: list[str] = []
    headers: list[str] = []
    action = default_action
    for part in _UNESCAPED_COMMA.split(spec):
        part = part.replace("\\,", ",")
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in KEYS:
            raise BadPermission(f"{where}: {part!r} is not KEY=VALUE with a key among {', '.join(KEYS)}")
        if key in PATH_KEYS:
            paths.append((key, value))
        elif key == "method":
            methods.append(value)
        elif key == "header":
            headers.append(value)
        elif value.lower() in ("allow", "deny"):
            action = value.lower()
        else:
            raise BadPermission(f"{where}: action must be allow or deny, not {value!r}")
    if len(paths) > 1:
        raise BadPermission(f"{where}: at most one of path-exact, path-prefix, path-regex")
    return permission(action, paths[0] if paths else None, methods, headers, where)
