"""Hostile request bodies on every endpoint that decodes one: a 100k-deep JSON document (and a
deep HCL job) is a 400 `Request decode failed: ...` / parse error with nothing written, not a 500
RecursionError; a body nested just within the limit still reaches the endpoint's own validation."""
from __future__ import annotations

import pytest
import requests

from support.agents import RunningAgent

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000

NOMAD = [("POST", "/v1/jobs"), ("PUT", "/v1/jobs"), ("POST", "/v1/job/deep"), ("POST", "/v1/job/deep/plan"),
         ("POST", "/v1/jobs/parse")]
CONSUL = [("PUT", "/v1/agent/service/register"), ("PUT", "/v1/config"), ("POST", "/v1/connect/intentions"),
          ("PUT", "/v1/connect/intentions/exact?source=deep-a&destination=deep-b"),
          ("PUT", "/v1/agent/check/update/service:deep")]


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_deep_json_is_a_decode_error_everywhere(module_agent: RunningAgent, body: bytes) -> None:
    targets = ([(m, module_agent.nomad_addr + p) for m, p in NOMAD]
               + [(m, module_agent.consul_addr + p) for m, p in CONSUL])
    for method, url in targets:
        resp = requests.request(method, url, data=body, timeout=30)
        assert resp.status_code == 400, (method, url, resp.status_code, resp.text[:200])
        assert resp.text.startswith("Request decode failed: exceeded max depth"), (url, resp.text[:200])
    assert requests.get(f"{module_agent.nomad_addr}/v1/job/deep", timeout=10).status_code == 404
    assert requests.get(f"{module_agent.consul_addr}/v1/connect/intentions", timeout=10).json() in (None, [])


def test_json_at_the_depth_limit_reaches_validation(module_agent: RunningAgent) -> None:
    meta = b'{"a":' * 120 + b"1" + b"}" * 120
    body = b'{"Job": {"ID": "deep", "Name": "deep", "Meta": ' + meta + b"}}"
    resp = requests.post(f"{module_agent.nomad_addr}/v1/jobs", data=body, timeout=10)
    assert resp.status_code == 400 and "Meta" in resp.text, resp.text[:200]


def test_deep_hcl_is_a_parse_error(module_agent: RunningAgent) -> None:
    hcl = 'job "deep" { meta = { a = ' + "[" * 5000 + "]" * 5000 + " } }"
    resp = requests.post(f"{module_agent.nomad_addr}/v1/jobs/parse", json={"JobHCL": hcl}, timeout=60)
    assert resp.status_code == 400 and resp.text.startswith("Error parsing job file"), resp.text[:200]
