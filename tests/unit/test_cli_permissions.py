"""`intent allow|deny` L7 options → Consul's Permissions shape (nomadmesh.mesh.permission_input). Pure."""
from __future__ import annotations

import pytest

from nomadmesh.mesh.intentions import permission_text, permissions_from_json
from nomadmesh.mesh.permission_input import BadPermission, from_flags, from_spec


def test_flags_make_one_permission() -> None:
    assert from_flags("deny", None, "/admin", None, ["post"], ["X-Role=ops"]) == {
        "Action": "deny", "HTTP": {"PathPrefix": "/admin", "Methods": ["POST"],
                                   "Header": [{"Name": "X-Role", "Exact": "ops"}]}}
    assert from_flags("allow", None, None, None, [], []) is None


def test_spec_with_escaped_comma_and_own_action() -> None:
    got = from_spec("allow", r"path-regex=/a{1\,3},header=:authority=api,action=DENY", "--permission 1")
    assert got == {"Action": "deny", "HTTP": {"PathRegex": "/a{1,3}", "Header": [{"Name": ":authority",
                                                                                   "Exact": "api"}]}}


def test_header_value_may_hold_equals_signs() -> None:
    got = from_spec("allow", "header=X-Q=a=b", "w")
    assert got["HTTP"]["Header"] == [{"Name": "X-Q", "Exact": "a=b"}]


@pytest.mark.parametrize("spec", ["path-prefix=/a,path-exact=/b", "method=GET,method=GET", "header==x", "header=X-A=",
                                  "path-exact=", "nothing"])
def test_bad_specs(spec: str) -> None:
    with pytest.raises(BadPermission):
        from_spec("allow", spec, "w")


def test_permission_text_round_trip_through_consuls_shape() -> None:
    perms = permissions_from_json([from_spec("allow", "path-prefix=/p,method=GET,method=HEAD,header=X-A", "w")])
    assert permission_text(perms[0]) == "allow PathPrefix=/p Methods=GET,HEAD Header[X-A] present"
