"""Fixtures of the e2e tier: the sample mesh on a bridge, two Envoys on our ADS server, headless Chromium."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from support.browser import chromium
from support.envoy_pair import Mesh, envoy_pair
from support.sample_mesh import sample_mesh as _sample_mesh


@pytest.fixture
def sample_mesh(agent_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """An agent on its own bridge with nothing deployed yet: {"agent", "nomad", "consul", "prefix", "bridge_ip"}."""
    yield from _sample_mesh(agent_factory, monkeypatch)


@pytest.fixture(scope="module")
def mesh() -> Iterator[Mesh]:
    """Two Envoys on loopback driven by our ADS server (support/envoy_pair.py), shared by a module's tests."""
    yield from envoy_pair()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(10_000)
    try:
        yield pg
    finally:
        ctx.close()
