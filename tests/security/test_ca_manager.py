"""``CaManager`` over the memory store and a real SQLite file: the CA is created once (also under
concurrency and across two managers sharing a store), survives a reopen, follows the mesh's
``conf.caCert``, and issues identities for Dataplanes."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from atoll.errors import InvalidInput
from atoll.pki import certificate_facts, certificate_uris, rsa_key_bits, verify_chain
from atoll.resources import decode
from atoll.resources.models.mesh import MeshSpec
from atoll.security import CaManager, ca_cert_secret, ca_key_secret
from atoll.store import ListFilter, Store, open_store
from tests.security.conftest import START, FakeClock, dataplane, mtls_mesh, plain_mesh


async def secret_names(store: Store, mesh: str = "default") -> list[str]:
    return [r.name for r in (await store.list(ListFilter(type="Secret", mesh=mesh))).items]


async def test_no_mtls_no_ca(store: Store, clock: FakeClock) -> None:
    cas = CaManager(store, clock)
    assert await cas.ensure_ca(plain_mesh()) is None
    assert await cas.issue_for_dataplane(plain_mesh(), dataplane()) is None
    assert await secret_names(store) == []
    assert await cas.get_ca("default", "ca-1") is None


async def test_ca_is_created_once_as_two_secrets(store: Store, clock: FakeClock) -> None:
    cas = CaManager(store, clock)
    mesh = mtls_mesh()
    first = await cas.ensure_ca(mesh)
    assert first is not None
    assert await secret_names(store) == [ca_cert_secret("ca-1"), ca_key_secret("ca-1")]
    assert [ca_cert_secret("ca-1"), ca_key_secret("ca-1")] == ["ca-builtin-cert-ca-1", "ca-builtin-key-ca-1"]
    clock.advance(timedelta(days=1))
    assert await cas.ensure_ca(mesh) == first
    assert await CaManager(store, clock).get_ca("default", "ca-1") == first
    secret = await store.get("Secret", "ca-builtin-cert-ca-1", "default")
    assert secret.spec.value.decode() == first.cert_pem  # base64 of the PEM in data
    assert secret.meta.version == 1
    _, not_before, not_after = certificate_facts(first.cert_pem)
    assert (not_before, not_after - not_before) == (START, timedelta(days=365))  # conf.caCert.expiration: 1y
    assert certificate_uris(first.cert_pem) == ["spiffe://default"]


async def test_rsa_bits_come_from_the_mesh(store: Store, clock: FakeClock) -> None:
    ca = await CaManager(store, clock).ensure_ca(mtls_mesh("big", bits=3072))
    assert ca is not None and rsa_key_bits(ca.cert_pem) == 3072


async def test_defaults_without_conf(store: Store, clock: FakeClock) -> None:
    mesh = decode(
        {"type": "Mesh", "name": "m", "mtls": {"enabledBackend": "b", "backends": [{"name": "b", "type": "builtin"}]}}
    )
    ca = await CaManager(store, clock).ensure_ca(mesh)
    assert ca is not None and rsa_key_bits(ca.key_pem) == 2048
    _, nb, na = certificate_facts(ca.cert_pem)
    assert na - nb == timedelta(days=3650)


async def test_concurrent_ensure_ca_makes_one_ca(store: Store, clock: FakeClock) -> None:
    # Two managers (as two CP instances sharing a store) and several tasks each, all at once.
    a, b = CaManager(store, clock), CaManager(store, clock)
    mesh = mtls_mesh()
    results = await asyncio.gather(*(m.ensure_ca(mesh) for m in (a, b, a, b, a, b)))
    assert results[0] is not None
    assert all(r == results[0] for r in results)
    assert await secret_names(store) == ["ca-builtin-cert-ca-1", "ca-builtin-key-ca-1"]
    assert (await store.get("Secret", "ca-builtin-key-ca-1", "default")).meta.version == 1


async def test_ca_survives_a_reopen(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "cas.db"
    store = await open_store("sqlite", path=path)
    try:
        created = await CaManager(store, clock).ensure_ca(mtls_mesh())
    finally:
        await store.close()
    store = await open_store("sqlite", path=path)
    try:
        assert await CaManager(store, clock).get_ca("default", "ca-1") == created
        assert await CaManager(store, clock).ensure_ca(mtls_mesh()) == created
    finally:
        await store.close()


async def test_each_mesh_has_its_own_ca(store: Store, clock: FakeClock) -> None:
    cas = CaManager(store, clock)
    one, two = await cas.ensure_ca(mtls_mesh("one")), await cas.ensure_ca(mtls_mesh("two"))
    assert one is not None and two is not None and one.key_pem != two.key_pem
    assert certificate_uris(two.cert_pem) == ["spiffe://two"]


def test_unknown_backend_type_is_refused_by_the_model() -> None:
    doc = {"type": "Mesh", "name": "m", "mtls": {"enabledBackend": "v", "backends": [{"name": "v", "type": "vault"}]}}
    with pytest.raises(InvalidInput) as info:
        decode(doc)
    assert [e.path for e in info.value.errors] == ["mtls.backends[0].type"]
    assert 'unknown CA backend type "vault"' in str(info.value)


async def test_unknown_backend_type_that_slipped_past_validation_is_an_error(store: Store, clock: FakeClock) -> None:
    good = mtls_mesh()
    spec = good.spec
    assert isinstance(spec, MeshSpec) and spec.mtls is not None
    vault = spec.mtls.backends[0].model_copy(update={"type": "vault"})
    bad = type(good)(
        type="Mesh",
        meta=good.meta,
        spec=spec.model_copy(update={"mtls": spec.mtls.model_copy(update={"backends": [vault]})}),
    )
    with pytest.raises(InvalidInput) as info:
        await CaManager(store, clock).ensure_ca(bad)
    assert [e.path for e in info.value.errors] == ["mtls.backends[0].type"]
    assert await secret_names(store) == []


async def test_identity_for_a_dataplane(store: Store, clock: FakeClock) -> None:
    cas = CaManager(store, clock)
    mesh = mtls_mesh()
    ident = await cas.issue_for_dataplane(mesh, dataplane(version="v1"), extra_tags={"kuma.io/zone": "east"})
    assert ident is not None
    ca = await cas.get_ca("default", "ca-1")
    assert ca is not None
    verify_chain(ident.cert_pem, ca.cert_pem, now=START)
    assert list(ident.uris) == [
        "spiffe://default/web",
        "kuma://kuma.io/service/web",
        "kuma://kuma.io/zone/east",
        "kuma://version/v1",
    ]
    assert ident.not_after - ident.not_before == timedelta(hours=2)  # dpCert.rotation.expiration
