"""The dev agent's check of what its data plane cannot serve, on decoded entries (pure)."""
from __future__ import annotations

from typing import Any

import pytest

from nomadmesh.agent.consul import chain_support
from nomadmesh.agent.consul.config_entries import decode


def router(*routes: Any) -> dict[str, Any]:
    return decode({"Kind": "service-router", "Name": "web", "Routes": list(routes)})


@pytest.mark.parametrize("route", [{"Destination": "api"}, {"Match": 5}, {"Match": {"HTTP": "x"}}])
def test_a_router_part_of_another_type_is_no_crash(route: Any) -> None:
    # Consul's router rules check paths and matchers, not every part's type; this check must not fail on them.
    assert chain_support.problem(router(route), "dc1") is None


def test_the_agents_own_datacenter_is_served_and_another_is_not() -> None:
    entry = decode({"Kind": "service-resolver", "Name": "api",
                    "Failover": {"*": {"Datacenters": ["dc1", "dc2"]}}})
    assert chain_support.problem(entry, "dc2") == ('Bad Failover["*"]: Datacenter "dc1" is not supported by the '
                                                   'nomadmesh dev agent (its only datacenter is "dc2")')
    assert chain_support.problem(entry, "dc1") == ('Bad Failover["*"]: Datacenter "dc2" is not supported by the '
                                                   'nomadmesh dev agent (its only datacenter is "dc1")')
    assert chain_support.problem(decode({"Kind": "service-resolver", "Name": "api",
                                         "Failover": {"*": {"Datacenters": ["dc1"]}}}), "dc1") is None
