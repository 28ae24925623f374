"""Dataplane and zone tokens: valid, expired, forged, unknown key, revoked, malformed, wrong kind,
rotation, and whether a token fits a Dataplane (mesh, name, tags)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from atoll.pki import (
    DataplaneClaims,
    InvalidToken,
    SigningKey,
    claims_match,
    generate_signing_key,
    issue_dataplane_token,
    issue_zone_token,
    token_id,
    unverified_claims,
    verify_dataplane_token,
    verify_zone_token,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return generate_signing_key("k-0001")


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    return generate_signing_key("k-0001")  # same id, another key: a forger's


def dp_token(key: SigningKey, **kw: object) -> str:
    args: dict[str, object] = {"mesh": "default", "name": "web-1", "tags": None, "valid_for": HOUR, "now": NOW}
    args.update(kw)
    return issue_dataplane_token(key, **args)  # type: ignore[arg-type]


def verify(token: str, key: SigningKey, **kw: object) -> DataplaneClaims:
    args: dict[str, object] = {"keys": {key.kid: key.public_pem}, "now": NOW, "revoked_ids": set()}
    args.update(kw)
    return verify_dataplane_token(token, **args)  # type: ignore[arg-type]


def reason(token: str, key: SigningKey, **kw: object) -> tuple[str, str]:
    with pytest.raises(InvalidToken) as info:
        verify(token, key, **kw)
    return info.value.code, info.value.reason


def test_valid_dataplane_token(key: SigningKey) -> None:
    token = dp_token(key, tags={"kuma.io/service": ["web", "web"], "version": ["v2", "v1"]})
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": "k-0001", "typ": "JWT"}
    c = verify(token, key, now=NOW + HOUR - timedelta(seconds=1))
    assert (c.mesh, c.name, c.proxy_type) == ("default", "web-1", "dataplane")
    assert c.tags == {"kuma.io/service": ("web",), "version": ("v1", "v2")}
    assert (c.issued_at, c.expires_at) == (NOW, NOW + HOUR)
    assert c.jti == token_id(token) and len(c.jti) == 32


def test_tokens_have_distinct_ids(key: SigningKey) -> None:
    assert token_id(dp_token(key)) != token_id(dp_token(key))


def test_expired(key: SigningKey) -> None:
    code, why = reason(dp_token(key), key, now=NOW + HOUR)
    assert code == "expired" and "expired at 2026-05-01T13:00:00+00:00" in why


def test_issued_in_the_future(key: SigningKey) -> None:
    code, _ = reason(dp_token(key, now=NOW + HOUR), key)
    assert code == "not-yet-valid"


def test_forged_with_another_key_of_the_same_id(key: SigningKey, other_key: SigningKey) -> None:
    code, why = reason(dp_token(other_key), key)
    assert code == "bad-signature" and "forged" in why


def test_altered_claims_do_not_verify(key: SigningKey) -> None:
    header, payload, signature = dp_token(key).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["mesh"] = "prod"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    code, _ = reason(f"{header}.{forged_payload}.{signature}", key)
    assert code == "bad-signature"


def test_unknown_key_id(key: SigningKey) -> None:
    code, why = reason(dp_token(generate_signing_key("k-0009")), key)
    assert code == "unknown-key" and '"k-0009"' in why


def test_revoked(key: SigningKey) -> None:
    token = dp_token(key)
    code, why = reason(token, key, revoked_ids={"x", token_id(token)})
    assert code == "revoked" and token_id(token) in why
    verify(dp_token(key), key, revoked_ids={token_id(token)})  # others still pass


@pytest.mark.parametrize(
    "token",
    ["", "   ", "garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.x"],
    ids=["empty", "blank", "garbage", "three-parts", "hs256"],
)
def test_malformed(key: SigningKey, token: str) -> None:
    code, _ = reason(token, key)
    assert code == "malformed"


def test_other_algorithms_and_missing_kid_are_malformed(key: SigningKey) -> None:
    hs = jwt.encode(
        {"kind": "atoll/dataplane", "mesh": "default"}, "s" * 32, algorithm="HS256", headers={"kid": "k-0001"}
    )
    assert reason(hs, key) == ("malformed", "the token is signed with 'HS256'; only RS256 is accepted")
    none = jwt.encode({"kind": "atoll/dataplane"}, None, algorithm="none")
    assert reason(none, key)[0] == "malformed"
    no_kid = jwt.encode({"kind": "atoll/dataplane"}, _private(key), algorithm="RS256")
    assert reason(no_kid, key) == ("malformed", "the token header names no signing key (kid)")


def test_missing_claims_are_malformed(key: SigningKey) -> None:
    base = {"kind": "atoll/dataplane", "mesh": "default", "jti": "j", "iat": 0, "exp": 2**40}
    for drop, expected in (("jti", "jti"), ("exp", "exp"), ("mesh", "mesh")):
        claims = {k: v for k, v in base.items() if k != drop}
        token = jwt.encode(claims, _private(key), algorithm="RS256", headers={"kid": key.kid})
        code, why = reason(token, key)
        assert code == "malformed" and expected in why, (drop, why)
    bad_tags = jwt.encode({**base, "tags": {"a": "b"}}, _private(key), algorithm="RS256", headers={"kid": key.kid})
    assert reason(bad_tags, key)[0] == "malformed"


def test_zone_token_is_not_a_dataplane_token_and_vice_versa(key: SigningKey) -> None:
    zone = issue_zone_token(key, zone="east", scope=["ingress"], valid_for=HOUR, now=NOW)
    assert reason(zone, key)[0] == "wrong-kind"
    with pytest.raises(InvalidToken) as info:
        verify_zone_token(dp_token(key), keys={key.kid: key.public_pem}, now=NOW)
    assert info.value.code == "wrong-kind"


def test_zone_token(key: SigningKey) -> None:
    token = issue_zone_token(key, zone="east", scope=["egress", "cp", "egress"], valid_for=HOUR, now=NOW)
    c = verify_zone_token(token, keys={key.kid: key.public_pem}, now=NOW)
    assert (c.zone, c.scope) == ("east", ("cp", "egress"))
    with pytest.raises(InvalidToken) as info:
        verify_zone_token(token, keys={key.kid: key.public_pem}, now=NOW, revoked_ids=[c.jti])
    assert info.value.code == "revoked"
    with pytest.raises(ValueError, match="unknown scope 'admin'"):
        issue_zone_token(key, zone="east", scope=["admin"], valid_for=HOUR, now=NOW)  # type: ignore[list-item]


def test_rotation_old_tokens_verify_until_their_key_is_removed(key: SigningKey) -> None:
    new = generate_signing_key("k-0002")
    old_token, new_token = dp_token(key), dp_token(new)
    both = {key.kid: key.public_pem, new.kid: new.public_pem}
    assert verify(old_token, key, keys=both).mesh == "default"
    assert verify(new_token, key, keys=both).mesh == "default"
    only_new = {new.kid: new.public_pem}
    assert reason(old_token, key, keys=only_new)[0] == "unknown-key"
    assert verify(new_token, key, keys=only_new).name == "web-1"


def test_unverified_claims_are_readable_but_garbage_is_not(key: SigningKey) -> None:
    assert unverified_claims(dp_token(key))["mesh"] == "default"
    with pytest.raises(InvalidToken):
        unverified_claims("nope")


# --- claims_match ------------------------------------------------------------------------------


def claims(**kw: object) -> DataplaneClaims:
    base: dict[str, object] = {
        "mesh": "default",
        "name": "web-1",
        "tags": {},
        "proxy_type": "dataplane",
        "jti": "j",
        "issued_at": NOW,
        "expires_at": NOW + HOUR,
    }
    base.update(kw)
    return DataplaneClaims(**base)  # type: ignore[arg-type]


def test_claims_match() -> None:
    tags = {"kuma.io/service": {"web"}, "version": {"v1"}}
    assert claims_match(claims(), "default", "web-1", tags) is None
    assert claims_match(claims(name=None), "default", "any-name", tags) is None
    assert claims_match(claims(tags={"kuma.io/service": ("web", "api")}), "default", "web-1", tags) is None


def test_claims_do_not_match() -> None:
    tags = {"kuma.io/service": {"web", "db"}}
    assert claims_match(claims(), "prod", "web-1", tags) == (
        'the token is for mesh "default", the Dataplane is in mesh "prod"'
    )
    assert claims_match(claims(), "default", "web-2", tags) == 'the token is for Dataplane "web-1", not "web-2"'
    assert claims_match(claims(tags={"version": ("v1",)}), "default", "web-1", tags) == (
        "tag version: the Dataplane has no such tag; the token requires one of v1"
    )
    assert claims_match(claims(tags={"kuma.io/service": ("web",)}), "default", "web-1", tags) == (
        'tag kuma.io/service: value "db" is not allowed by the token (allowed: web)'
    )
    assert "proxy of type" in (claims_match(claims(proxy_type="ingress"), "default", "web-1", tags) or "")


def _private(key: SigningKey) -> object:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(key.private_pem.encode(), password=None)
