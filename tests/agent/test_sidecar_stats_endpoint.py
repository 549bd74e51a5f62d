"""The dev agent's /v1/nomadmesh/sidecar/<id>/stats without root: 404 for an unknown service or one that
is not a sidecar, 503 for a sidecar no allocation of this agent runs, and the UI saying why."""
from __future__ import annotations

import requests

from support.agents import RunningAgent
from support.consul_api import register, sidecar_stats_url


def test_endpoint_answers_404_for_unknown_or_non_proxy_and_503_for_a_sidecar_it_does_not_run(
        module_agent: RunningAgent) -> None:
    register(module_agent, "s-web")  # through the agent API: a sidecar no allocation runs
    unknown = requests.get(sidecar_stats_url(module_agent, "nope"), timeout=5)
    assert unknown.status_code == 404 and "Unknown service ID 'nope'" in unknown.text
    plain = requests.get(sidecar_stats_url(module_agent, "s-web"), timeout=5)
    assert plain.status_code == 404 and "not a sidecar proxy" in plain.text
    side = requests.get(sidecar_stats_url(module_agent, "s-web-sidecar-proxy"), timeout=5)
    assert side.status_code == 503 and "not run by this agent's Nomad" in side.text
    assert len(side.text.strip().splitlines()) == 1
    # The UI says why, in the page.
    html = requests.get(f"{module_agent.consul_addr}/ui/services/s-web", timeout=10).text
    assert 'data-stats="unavailable"' in html and "not run by this agent&#39;s Nomad" in html


def test_prometheus_format_answers_the_same_refusals_and_checks_its_filter(module_agent: RunningAgent) -> None:
    register(module_agent, "p-web")
    url = sidecar_stats_url(module_agent, "p-web-sidecar-proxy")
    side = requests.get(url, params={"format": "prometheus"}, timeout=5)
    assert side.status_code == 503 and "not run by this agent's Nomad" in side.text
    unknown = requests.get(sidecar_stats_url(module_agent, "nope"), params={"format": "prometheus"}, timeout=5)
    assert unknown.status_code == 404
    bad = requests.get(url, params={"format": "prometheus", "filter": "(unclosed"}, timeout=5)
    assert bad.status_code == 400 and bad.text.startswith("filter: not a regular expression")
    long = requests.get(url, params={"format": "prometheus", "filter": "a" * 513}, timeout=5)
    assert long.status_code == 400 and "longer than 512 characters" in long.text
