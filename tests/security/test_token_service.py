"""Store-backed tokens: issuing creates the signing key once, ``TokenVerifier`` lets in exactly the
proxies and zones a token is for, revocation and rotation work across managers sharing a store."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from atoll.errors import Forbidden, InvalidInput, Unauthenticated
from atoll.pki import generate_signing_key, issue_dataplane_token, token_id
from atoll.security import NoAuth, TokenIssuer, TokenVerifier, proxy_authenticator
from atoll.store import ListFilter, Store
from tests.security.conftest import FakeClock, dataplane, plain_mesh

DAY = timedelta(days=1)


@pytest.fixture
async def issuer(store: Store, clock: FakeClock) -> TokenIssuer:
    await store.create(plain_mesh("default"))
    await store.create(plain_mesh("other"))
    return TokenIssuer(store, clock)


@pytest.fixture
def verifier(store: Store, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(store, clock)


async def names(store: Store, type: str, mesh: str | None = None) -> list[str]:
    return [r.name for r in (await store.list(ListFilter(type=type, mesh=mesh))).items]


async def rejected(verifier: TokenVerifier, token: str | None, **dp: str) -> Unauthenticated | Forbidden:
    with pytest.raises((Unauthenticated, Forbidden)) as info:
        await verifier.verify_dataplane(token, dataplane(**dp))
    return info.value


async def test_valid_token_lets_its_dataplane_in(issuer: TokenIssuer, verifier: TokenVerifier, store: Store) -> None:
    token = await issuer.issue_dataplane(mesh="default", name="web-1", tags={"kuma.io/service": ["web"]}, valid_for=DAY)
    await verifier.verify_dataplane(token, dataplane())
    claims = await verifier.dataplane_claims(token, dataplane())
    assert (claims.mesh, claims.name) == ("default", "web-1")
    assert await names(store, "Secret", "default") == ["dataplane-token-signing-key-default-0001"]
    # The same key signs the next token.
    await issuer.issue_dataplane(mesh="default", name="web-2", valid_for=DAY)
    assert await names(store, "Secret", "default") == ["dataplane-token-signing-key-default-0001"]


async def test_unknown_mesh_is_invalid_input(issuer: TokenIssuer) -> None:
    with pytest.raises(InvalidInput) as info:
        await issuer.issue_dataplane(mesh="nope", name="a", valid_for=DAY)
    assert [(e.path, e.message) for e in info.value.errors] == [("mesh", 'mesh "nope" does not exist')]


async def test_missing_token(verifier: TokenVerifier) -> None:
    for token in (None, "", "  "):
        e = await rejected(verifier, token)
        assert isinstance(e, Unauthenticated) and "no dataplane token" in e.reason


async def test_expired_token(issuer: TokenIssuer, verifier: TokenVerifier, clock: FakeClock) -> None:
    token = await issuer.issue_dataplane(mesh="default", name="web-1", valid_for=timedelta(hours=1))
    clock.advance(timedelta(hours=1))
    e = await rejected(verifier, token)
    assert isinstance(e, Unauthenticated) and "(expired)" in e.reason


async def test_forged_token(issuer: TokenIssuer, verifier: TokenVerifier, clock: FakeClock) -> None:
    await issuer.issue_dataplane(mesh="default", name="web-1", valid_for=DAY)  # the real key exists
    forger = generate_signing_key("dataplane-token-signing-key-default-0001")
    forged = issue_dataplane_token(forger, mesh="default", name="web-1", tags=None, valid_for=DAY, now=clock())
    e = await rejected(verifier, forged)
    assert isinstance(e, Unauthenticated) and "(bad-signature)" in e.reason and "forged" in e.reason


async def test_malformed_token(verifier: TokenVerifier) -> None:
    e = await rejected(verifier, "not.a.token")
    assert isinstance(e, Unauthenticated) and "(malformed)" in e.reason


async def test_token_of_a_mesh_without_keys(verifier: TokenVerifier, clock: FakeClock) -> None:
    token = issue_dataplane_token(
        generate_signing_key("k"), mesh="default", name=None, tags=None, valid_for=DAY, now=clock()
    )
    e = await rejected(verifier, token)
    assert isinstance(e, Unauthenticated) and "(unknown-key)" in e.reason


async def test_token_for_another_mesh_name_or_tags_is_forbidden(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    other_mesh = await issuer.issue_dataplane(mesh="other", name="web-1", valid_for=DAY)
    e = await rejected(verifier, other_mesh)
    assert isinstance(e, Forbidden) and 'the token is for mesh "other"' in e.reason
    wrong_name = await issuer.issue_dataplane(mesh="default", name="web-2", valid_for=DAY)
    e = await rejected(verifier, wrong_name)
    assert isinstance(e, Forbidden) and 'for Dataplane "web-2", not "web-1"' in e.reason
    tagged = await issuer.issue_dataplane(mesh="default", name=None, tags={"version": ["v1"]}, valid_for=DAY)
    e = await rejected(verifier, tagged)
    assert isinstance(e, Forbidden) and "tag version: the Dataplane has no such tag" in e.reason
    await verifier.verify_dataplane(tagged, dataplane(name="any", version="v1"))
    e = await rejected(verifier, tagged, version="v2")
    assert isinstance(e, Forbidden) and 'value "v2" is not allowed' in e.reason


async def test_revoked_token(issuer: TokenIssuer, verifier: TokenVerifier, store: Store) -> None:
    token = await issuer.issue_dataplane(mesh="default", name="web-1", valid_for=DAY)
    keep = await issuer.issue_dataplane(mesh="default", name="web-1", valid_for=DAY)
    await issuer.revoke("default", token_id(token))
    await issuer.revoke("default", token_id(token))  # idempotent
    e = await rejected(verifier, token)
    assert isinstance(e, Unauthenticated) and "(revoked)" in e.reason
    await verifier.verify_dataplane(keep, dataplane())
    stored = await store.get("Secret", "dataplane-token-revocations-default", "default")
    assert json.loads(stored.spec.value) == [token_id(token)]


async def test_concurrent_revocations_are_all_kept(issuer: TokenIssuer, store: Store) -> None:
    others = [TokenIssuer(store) for _ in range(3)]
    ids = [f"jti-{i}" for i in range(12)]
    await asyncio.gather(*(others[i % 3].revoke("default", jti) for i, jti in enumerate(ids)))
    stored = await store.get("Secret", "dataplane-token-revocations-default", "default")
    assert sorted(json.loads(stored.spec.value)) == sorted(ids)


async def test_rotation(issuer: TokenIssuer, verifier: TokenVerifier, store: Store) -> None:
    old = await issuer.issue_dataplane(mesh="default", name="web-1", valid_for=DAY)
    kid = await issuer.rotate_signing_key("default")
    assert kid == "dataplane-token-signing-key-default-0002"
    new = await issuer.issue_dataplane(mesh="default", name="web-1", valid_for=DAY)
    assert new.split(".")[0] != old.split(".")[0]  # another kid in the header
    await verifier.verify_dataplane(old, dataplane())  # both verify until the old key is removed
    await verifier.verify_dataplane(new, dataplane())
    await issuer.remove_signing_key("default", "dataplane-token-signing-key-default-0001")
    e = await rejected(verifier, old)
    assert isinstance(e, Unauthenticated) and "(unknown-key)" in e.reason
    await verifier.verify_dataplane(new, dataplane())
    assert await names(store, "Secret", "default") == ["dataplane-token-signing-key-default-0002"]


async def test_first_key_is_created_once_under_concurrency(store: Store, clock: FakeClock) -> None:
    await store.create(plain_mesh("default"))
    issuers = [TokenIssuer(store, clock) for _ in range(3)]
    tokens = await asyncio.gather(
        *(issuers[i % 3].issue_dataplane(mesh="default", name="web-1", valid_for=DAY) for i in range(9))
    )
    assert await names(store, "Secret", "default") == ["dataplane-token-signing-key-default-0001"]
    verifier = TokenVerifier(store, clock)
    for t in tokens:
        await verifier.verify_dataplane(t, dataplane())


async def test_zone_tokens(issuer: TokenIssuer, verifier: TokenVerifier, store: Store, clock: FakeClock) -> None:
    token = await issuer.issue_zone(zone="east", scope=["ingress", "egress"], valid_for=DAY)
    await verifier.verify_zone(token, "east", "ingress")
    claims = await verifier.zone_claims(token, "east", "egress")
    assert claims.scope == ("ingress", "egress")
    assert await names(store, "GlobalSecret") == ["zone-token-signing-key-0001"]
    with pytest.raises(Forbidden, match='for zone "east"'):
        await verifier.verify_zone(token, "west", "ingress")
    with pytest.raises(Forbidden, match="for ingress, egress, not cp"):
        await verifier.verify_zone(token, "east", "cp")
    with pytest.raises(Unauthenticated, match="no zone token"):
        await verifier.verify_zone(None, "east", "cp")
    dp_token = await issuer.issue_dataplane(mesh="default", name="web-1", valid_for=DAY)
    with pytest.raises(Unauthenticated, match=r"wrong kind of token: this is a dataplane token.*atoll token zone"):
        await verifier.verify_zone(dp_token, "east", "ingress")
    await issuer.revoke(None, token_id(token))
    with pytest.raises(Unauthenticated, match="revoked"):
        await verifier.verify_zone(token, "east", "ingress")
    assert "zone-token-revocations" in await names(store, "GlobalSecret")
    clock.advance(2 * DAY)
    fresh = await issuer.issue_zone(zone="east", scope=["cp"], valid_for=DAY)
    await verifier.verify_zone(fresh, "east", "cp")


async def test_auth_none_lets_everyone_in(store: Store) -> None:
    auth = proxy_authenticator("none", store)
    assert isinstance(auth, NoAuth)
    await auth.verify_dataplane(None, dataplane())
    await auth.verify_zone(None, "east", "ingress")
    assert isinstance(proxy_authenticator("token", store), TokenVerifier)
    with pytest.raises(ValueError, match="token or none"):
        proxy_authenticator("maybe", store)


async def test_a_token_of_the_wrong_kind_says_so_and_names_the_command_that_makes_the_right_one(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    zone_token = await issuer.issue_zone(zone="east", scope=["ingress", "cp"], valid_for=DAY)
    err = await rejected(verifier, zone_token)
    assert isinstance(err, Unauthenticated)
    assert str(err) == (
        "Dataplane default/web-1: wrong kind of token: this is a zone token, Dataplane default/web-1 needs a"
        " dataplane token; make one with: atoll token dataplane --mesh default --name web-1"
    )
    dp_token = await issuer.issue_dataplane(mesh="default", name="web-1", valid_for=DAY)
    for scope in ("ingress", "egress", "cp"):
        with pytest.raises(Unauthenticated) as info:
            await verifier.verify_zone(dp_token, "east", scope)  # type: ignore[arg-type]
        assert str(info.value) == (
            f"zone east ({scope}): wrong kind of token: this is a dataplane token, zone east ({scope}) needs a"
            f" zone token; make one with: atoll token zone --zone east --scope {scope}"
        )
