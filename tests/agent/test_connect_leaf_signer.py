"""The agent's leaf signer process (agent/connect/signer.py): leaves it signs are the in-process
`sign_leaf`'s, a changed CA reaches it before the next leaf, and without it (closed, or died) `sign`
answers None so the agent signs in-process; the proxy manager holds such a leaf only if it is still
the answer."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from nomadmesh.agent.connect.ca import ConnectCA
from nomadmesh.agent.connect.cache import SnapshotCache
from nomadmesh.agent.connect.manager import ProxyManager
from nomadmesh.agent.connect.signer import LeafSigner
from nomadmesh.agent.context import AgentConfig, AgentContext

CLUSTER = "5e1f0c3a-0000-4000-8000-000000000014"


@pytest.fixture(scope="module")
def ca() -> ConnectCA:
    return ConnectCA.generate(CLUSTER)


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as r:  # one loop for the module: the signer belongs to the loop that started it
        yield r


@pytest.fixture(scope="module")
def signer() -> Iterator[LeafSigner]:
    s = LeafSigner()
    yield s
    s.close()


def _shape(cert: x509.Certificate) -> list[object]:
    """What two leaves of one CA for one service share: everything but key, serial and times."""
    exts = [(e.oid, e.critical, e.value) for e in cert.extensions
            if not isinstance(e.value, x509.SubjectKeyIdentifier)]
    return [cert.subject, cert.issuer, cert.version, cert.signature_hash_algorithm.name,  # type: ignore[union-attr]
            cert.not_valid_after_utc - cert.not_valid_before_utc, exts]


def test_a_signed_leaf_is_the_in_process_leaf_in_all_but_key_and_serial(
        ca: ConnectCA, runner: asyncio.Runner, signer: LeafSigner) -> None:
    leaf = runner.run(signer.sign(ca, "web", "dc1"))
    assert leaf is not None
    here = ca.sign_leaf("web", "dc1")
    assert ca.issued(leaf.cert)
    assert _shape(leaf.cert) == _shape(here.cert)
    assert (leaf.service, leaf.service_uri) == (here.service, here.service_uri)
    assert leaf.cert.serial_number != here.cert.serial_number and leaf.key_pem != here.key_pem
    assert leaf.cert_pem.count("BEGIN CERTIFICATE") == 1


def test_a_rotated_ca_signs_the_next_leaf_with_its_cross_signed_root_after_it(
        ca: ConnectCA, runner: asyncio.Runner, signer: LeafSigner) -> None:
    rotated = ca.rotated_to(ConnectCA.generate(CLUSTER))
    many = runner.run(_gather(signer, [(ca, "api"), (rotated, "api"), (ca, "db")]))
    old, new, old_again = many
    assert old is not None and new is not None and old_again is not None
    assert ca.issued(old.cert) and ca.issued(old_again.cert)
    assert rotated.issued(new.cert) and not ca.issued(new.cert)
    assert new.cert_pem.count("BEGIN CERTIFICATE") == 2  # the leaf, then the cross-signed root


async def _gather(signer: LeafSigner, asks: list[tuple[ConnectCA, str]]) -> list[object]:
    return list(await asyncio.gather(*(signer.sign(c, s, "dc1") for c, s in asks)))


def test_without_its_process_sign_answers_none(ca: ConnectCA) -> None:
    dying, closed = LeafSigner(), LeafSigner()
    with asyncio.Runner() as r:
        assert r.run(dying.sign(ca, "web", "dc1")) is not None
        assert dying._proc is not None
        dying._proc.kill()  # the worker dies: the agent signs in-process from now on
        assert r.run(dying.sign(ca, "web", "dc1")) is None
        closed.close()
        assert r.run(closed.sign(ca, "web", "dc1")) is None
    dying.close()
    assert dying._proc is None


@pytest.fixture
def manager(tmp_path: Path, ca: ConnectCA) -> Iterator[ProxyManager]:
    ctx = AgentContext.open(AgentConfig(data_dir=tmp_path, node_name="signer-node"))
    try:
        yield ProxyManager(ctx, ca, SnapshotCache())
    finally:
        ctx.close()


def test_a_leaf_signed_elsewhere_is_held_unless_one_came_first_or_the_ca_changed(
        manager: ProxyManager, ca: ConnectCA) -> None:
    assert manager.held_leaf_if_free("web") is None  # none held: the caller signs
    first = ca.sign_leaf("web", "dc1")
    held, index = manager.adopt_leaf_if_free("web", first, ca) or (None, 0)
    assert held is first and manager.held_leaf_if_free("web") == (first, index)
    # A second request's leaf, signed meanwhile, is dropped: one leaf per service, as before.
    assert manager.adopt_leaf_if_free("web", ca.sign_leaf("web", "dc1"), ca) == (first, index)
    # A leaf signed by the CA rotated out meanwhile is not held: the new CA signs one now.
    rotated = ca.rotated_to(ConnectCA.generate(CLUSTER))
    manager.ca = rotated
    stale = ca.sign_leaf("api", "dc1")
    adopted = manager.adopt_leaf_if_free("api", stale, ca)
    assert adopted is not None and adopted[0] is not stale and rotated.issued(adopted[0].cert)
