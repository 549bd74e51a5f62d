"""Nomad's boolean query flags and client fs flags: Go's strconv.ParseBool, each failure in its handler's words."""
from __future__ import annotations

import asyncio

import pytest
from quart import Quart

from nomadmesh.agent.http.common import HTTPError
from nomadmesh.agent.http.nomad_util import go_bool, parse_bool


def _flag(query: str, default: bool = False) -> bool:
    app = Quart(__name__)

    async def read() -> bool:
        async with app.test_request_context(f"/v1/job/web?{query}"):
            return parse_bool("purge", default)

    return asyncio.run(read())


@pytest.mark.parametrize(("query", "default", "expected"), [
    ("", False, False), ("", True, True), ("purge", False, True), ("purge=", False, True),
    ("purge=True", False, True), ("purge=t", False, True), ("purge=1", False, True),
    ("purge=False", True, False), ("purge=F", True, False), ("purge=0", True, False),
])
def test_query_flags_read_as_go_reads_them(query: str, default: bool, expected: bool) -> None:
    assert _flag(query, default) is expected


def test_a_query_flag_go_cannot_read_is_a_400_naming_it() -> None:
    with pytest.raises(HTTPError) as caught:
        _flag("purge=yes")
    assert (caught.value.status, str(caught.value)) == (400, "Failed to parse value of 'purge' ('yes') as a bool")


@pytest.mark.parametrize(("raw", "expected"), [("", False), ("true", True), ("TRUE", True), ("0", False)])
def test_client_fs_flags(raw: str, expected: bool) -> None:
    assert go_bool("follow", raw) is expected
