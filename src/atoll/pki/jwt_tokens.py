"""Dataplane and zone tokens: RS256 JSON Web Tokens signed by rotating keys (pure, ``PyJWT``).

A token's header names its signing key (``kid``); its claims say what it is for:

- dataplane token: ``{"kind": "atoll/dataplane", "mesh", "name" (or absent: any name), "tags":
  {tag: [values]}, "proxyType": "dataplane"|"ingress"|"egress", "jti", "iat", "exp"}``
- zone token: ``{"kind": "atoll/zone", "zone", "scope": ["cp"|"ingress"|"egress", ...], "jti", "iat", "exp"}``

``jti`` (a random 128-bit id) is what revocation lists name. Verification is explicit about time:
the caller passes ``now`` (PyJWT's own clock checks are off), so tests and callers agree on it.
Every failure raises ``InvalidToken`` with a ``code`` and a reason for a person; the checks run in
this order: ``malformed`` (not a JWT, wrong algorithm, missing/ill-typed claims), ``unknown-key``
(the ``kid`` is not among the keys given: never issued, or removed by rotation), ``bad-signature``
(forged, altered, or signed by another key), ``wrong-kind`` (a zone token used as a dataplane
token and vice versa), ``revoked``, ``expired`` / ``not-yet-valid``.

``claims_match`` then decides whether a verified dataplane token fits a Dataplane: same mesh, same
name (if the token names one), and for each tag in the token the Dataplane has that tag and all its
values for it are among the token's. It returns the reason when it does not fit, ``None`` when it does.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from atoll.errors import InvalidToken
from atoll.resources.proxy_id import PROXY_TYPE_NAMES

ALGORITHM = "RS256"
DATAPLANE_KIND = "atoll/dataplane"
ZONE_KIND = "atoll/zone"
PROXY_TYPES = PROXY_TYPE_NAMES
ZONE_SCOPES = ("cp", "ingress", "egress")
SIGNING_KEY_BITS = 2048

ProxyType = Literal["dataplane", "ingress", "egress"]
ZoneScope = Literal["cp", "ingress", "egress"]


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An RSA private key (PKCS#8 PEM) and the key id tokens name it by."""

    kid: str
    private_pem: str

    @property
    def public_pem(self) -> str:
        return _public_pem(self.private_pem)


def generate_signing_key(kid: str, *, bits: int = SIGNING_KEY_BITS) -> SigningKey:
    """A new RSA signing key named ``kid``."""
    if not kid:
        raise ValueError("a signing key needs a key id")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return SigningKey(kid, pem)


@dataclass(frozen=True, slots=True)
class DataplaneClaims:
    mesh: str
    name: str | None
    tags: Mapping[str, tuple[str, ...]]
    proxy_type: ProxyType
    jti: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ZoneClaims:
    zone: str
    scope: tuple[ZoneScope, ...]
    jti: str
    issued_at: datetime
    expires_at: datetime


# --- issuing -------------------------------------------------------------------------------------


def issue_dataplane_token(
    key: SigningKey,
    *,
    mesh: str,
    name: str | None,
    tags: Mapping[str, Sequence[str]] | None,
    valid_for: timedelta,
    now: datetime,
    proxy_type: ProxyType = "dataplane",
) -> str:
    """A dataplane token for ``mesh`` (and ``name``; ``None`` lets any Dataplane of the mesh use it)."""
    if not mesh:
        raise ValueError("mesh must not be empty")
    if proxy_type not in PROXY_TYPES:
        raise ValueError(f"proxy_type must be one of {', '.join(PROXY_TYPES)}, got {proxy_type!r}")
    claims: dict[str, Any] = {"kind": DATAPLANE_KIND, "mesh": mesh, "proxyType": proxy_type}
    if name:
        claims["name"] = name
    if tags:
        claims["tags"] = {k: sorted(set(v)) for k, v in sorted(tags.items())}
    return _sign(key, claims, valid_for, now)


def issue_zone_token(
    key: SigningKey, *, zone: str, scope: Sequence[ZoneScope], valid_for: timedelta, now: datetime
) -> str:
    """A zone token for ``zone``, good for the given scopes (``cp``, ``ingress``, ``egress``)."""
    if not zone:
        raise ValueError("zone must not be empty")
    if not scope:
        raise ValueError("scope must name at least one of cp, ingress, egress")
    bad = [s for s in scope if s not in ZONE_SCOPES]
    if bad:
        raise ValueError(f"unknown scope {bad[0]!r}; allowed: {', '.join(ZONE_SCOPES)}")
    ordered = [s for s in ZONE_SCOPES if s in scope]
    return _sign(key, {"kind": ZONE_KIND, "zone": zone, "scope": ordered}, valid_for, now)


def _sign(key: SigningKey, claims: dict[str, Any], valid_for: timedelta, now: datetime) -> str:
    if valid_for <= timedelta(0):
        raise ValueError("valid_for must be positive")
    iat = int(now.timestamp())
    body = {**claims, "jti": secrets.token_hex(16), "iat": iat, "exp": iat + int(valid_for.total_seconds())}
    return jwt.encode(body, _private_key(key.private_pem), algorithm=ALGORITHM, headers={"kid": key.kid})


# --- verifying -----------------------------------------------------------------------------------


def token_id(token: str) -> str:
    """The ``jti`` of a token, read without verifying it (to revoke it); ``InvalidToken`` if none."""
    return _text_claim(unverified_claims(token), "jti", "id (jti claim)")


def unverified_mesh(token: str) -> str:
    """The mesh a dataplane token names, read without verifying it (to pick the keys that verify it)."""
    return _text_claim(unverified_claims(token), "mesh", "mesh claim")


def _text_claim(claims: Mapping[str, Any], name: str, what: str) -> str:
    """The claim ``name`` if it is a non-empty string; else ``InvalidToken`` saying the token has no ``what``."""
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidToken("malformed", f"the token has no {what}")
    return value


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a token, **not verified**: only for choosing which keys to verify it with."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as e:
        raise InvalidToken("malformed", f"not a valid token: {e}") from None
    if not isinstance(claims, dict):
        raise InvalidToken("malformed", "the token claims are not an object")
    return claims


def verify_dataplane_token(
    token: str, *, keys: Mapping[str, str], now: datetime, revoked_ids: Iterable[str] = ()
) -> DataplaneClaims:
    """The claims of a valid dataplane token; ``InvalidToken`` otherwise (module docstring)."""
    c = _verify(token, keys, DATAPLANE_KIND, now, revoked_ids)
    mesh = _text_claim(c, "mesh", "mesh claim")
    name = c.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidToken("malformed", "the name claim is not a string")
    proxy_type = c.get("proxyType", "dataplane")
    if proxy_type not in PROXY_TYPES:
        raise InvalidToken("malformed", f"unknown proxyType claim {proxy_type!r}")
    raw_tags = c.get("tags") or {}
    if not isinstance(raw_tags, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v) for k, v in raw_tags.items()
    ):
        raise InvalidToken("malformed", "the tags claim must map tag names to lists of strings")
    return DataplaneClaims(
        mesh=mesh,
        name=name or None,
        tags={k: tuple(v) for k, v in raw_tags.items()},
        proxy_type=proxy_type,
        jti=c["jti"],
        issued_at=_time(c["iat"]),
        expires_at=_time(c["exp"]),
    )


def verify_zone_token(
    token: str, *, keys: Mapping[str, str], now: datetime, revoked_ids: Iterable[str] = ()
) -> ZoneClaims:
    """The claims of a valid zone token; ``InvalidToken`` otherwise (module docstring)."""
    c = _verify(token, keys, ZONE_KIND, now, revoked_ids)
    zone = _text_claim(c, "zone", "zone claim")
    scope = c.get("scope")
    if not isinstance(scope, list) or not scope or not all(s in ZONE_SCOPES for s in scope):
        raise InvalidToken("malformed", f"the scope claim must list some of {', '.join(ZONE_SCOPES)}")
    return ZoneClaims(
        zone=zone, scope=tuple(scope), jti=c["jti"], issued_at=_time(c["iat"]), expires_at=_time(c["exp"])
    )


def _verify(
    token: str, keys: Mapping[str, str], kind: str, now: datetime, revoked_ids: Iterable[str]
) -> dict[str, Any]:
    if not isinstance(token, str) or not token.strip():
        raise InvalidToken("malformed", "the token is empty")
    token = token.strip()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        raise InvalidToken("malformed", f"not a valid token: {e}") from None
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise InvalidToken("malformed", f"the token is signed with {alg!r}; only {ALGORITHM} is accepted")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("malformed", "the token header names no signing key (kid)")
    public_pem = keys.get(kid)
    if public_pem is None:
        raise InvalidToken(
            "unknown-key",
            f'the token was signed by key "{kid}", which this control plane does not have (rotated away?)',
        )
    try:
        claims = jwt.decode(
            token,
            _public_key(public_pem),
            algorithms=[ALGORITHM],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
        )
    except jwt.InvalidSignatureError:
        raise InvalidToken(
            "bad-signature", f'the token signature does not verify with key "{kid}" (forged or altered)'
        ) from None
    except jwt.PyJWTError as e:
        raise InvalidToken("malformed", f"not a valid token: {e}") from None
    if not isinstance(claims, dict):
        raise InvalidToken("malformed", "the token claims are not an object")
    if claims.get("kind") != kind:
        what = "zone" if kind == ZONE_KIND else "dataplane"
        raise InvalidToken("wrong-kind", f"not a {what} token (kind {claims.get('kind')!r})")
    jti, iat, exp = _text_claim(claims, "jti", "id (jti claim)"), claims.get("iat"), claims.get("exp")
    if not _seconds(iat) or not _seconds(exp):
        raise InvalidToken("malformed", "the iat and exp claims must be numbers of seconds")
    assert isinstance(iat, int) and isinstance(exp, int)
    if jti in set(revoked_ids):
        raise InvalidToken("revoked", f"the token (id {jti}) has been revoked")
    ts = now.timestamp()
    if ts >= exp:
        raise InvalidToken("expired", f"the token expired at {_time(exp).isoformat()}")
    if ts + 60 < iat:  # one minute of clock skew between issuer and verifier
        raise InvalidToken("not-yet-valid", f"the token is issued for {_time(iat).isoformat()}, in the future")
    return claims


# --- matching ------------------------------------------------------------------------------------


def claims_match(
    claims: DataplaneClaims,
    mesh: str,
    name: str,
    tags: Mapping[str, Iterable[str]],
    proxy_type: ProxyType = "dataplane",
) -> str | None:
    """Why the token of ``claims`` does not fit the proxy ``mesh``/``name`` with ``tags`` (tag ->
    every value the proxy has for it); ``None`` when it fits."""
    if claims.mesh != mesh:
        return f'the token is for mesh "{claims.mesh}", the Dataplane is in mesh "{mesh}"'
    if claims.name is not None and claims.name != name:
        return f'the token is for Dataplane "{claims.name}", not "{name}"'
    if claims.proxy_type != proxy_type:
        return f'the token is for a proxy of type "{claims.proxy_type}", not "{proxy_type}"'
    for tag in sorted(claims.tags):
        allowed = set(claims.tags[tag])
        have = set(tags.get(tag, ()))
        if not have:
            return f"tag {tag}: the Dataplane has no such tag; the token requires one of {', '.join(sorted(allowed))}"
        extra = sorted(have - allowed)
        if extra:
            return f'tag {tag}: value "{extra[0]}" is not allowed by the token (allowed: {", ".join(sorted(allowed))})'
    return None


# --- helpers -------------------------------------------------------------------------------------


def _seconds(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@functools.lru_cache(maxsize=64)
def _private_key(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("a token signing key must be an RSA key")
    return key


@functools.lru_cache(maxsize=256)
def _public_key(pem: str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except ValueError as e:
        raise InvalidToken("unknown-key", f"the verification key is not a PEM public key: {e}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidToken("unknown-key", "the verification key is not an RSA key")
    return key


@functools.lru_cache(maxsize=64)
def _public_pem(private_pem: str) -> str:
    return (
        _private_key(private_pem)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
