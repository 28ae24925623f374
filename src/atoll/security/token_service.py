"""Dataplane and zone tokens backed by the store: signing keys, revocation lists, issuing, verifying.

Signing keys are RSA keys kept as secrets named with a 4-digit serial:

- dataplane tokens of mesh M: ``Secret`` ``dataplane-token-signing-key-M-0001``, ``-0002``, ... in M
- zone tokens: ``GlobalSecret`` ``zone-token-signing-key-0001``, ...

A key's id (``kid`` in the token header) is its secret's name. The newest key (highest serial)
signs; every stored key verifies, so tokens signed before a rotation keep working until their key is
removed (``remove_*_key``). The first key is created on first issue (race-safe: the first writer
wins, see ``atoll.security.secrets``).

Revoked token ids (``jti``) are a JSON list in ``dataplane-token-revocations-M`` (a Secret of M) and
the ``zone-token-revocations`` GlobalSecret, updated with optimistic concurrency.

``TokenVerifier.verify_dataplane(token, dataplane)`` is what a control plane calls when a proxy
bootstraps or opens its ADS stream (token from the ``x-atoll-token`` gRPC metadata header): it
raises ``Unauthenticated`` (no token, malformed, unknown key, forged, revoked, expired) or
``Forbidden`` (a valid token for another mesh or Dataplane, or without the Dataplane's tags).
``verify_zone`` does the same for zone proxies and zone control planes. A token of the other kind (a
dataplane token given to a zone ingress or a zone CP, a zone token given to a Dataplane) is refused
before any key is looked up, saying so and naming the ``atoll token`` command that makes the right
one (``wrong_kind``). ``NoAuth`` accepts everything (``--auth none``, for local experiments).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

from atoll.errors import Conflict, FieldError, Forbidden, InvalidInput, InvalidToken, NotFound, Unauthenticated
from atoll.pki import jwt_tokens
from atoll.pki.jwt_tokens import DataplaneClaims, ProxyType, SigningKey, ZoneClaims, ZoneScope
from atoll.resources.meta import Resource
from atoll.resources.models.dataplane import DataplaneSpec
from atoll.security import secrets
from atoll.security.mesh_ca import dataplane_tag_set
from atoll.security.secrets import Clock, utc_now
from atoll.store.protocol import Store

TOKEN_HEADER = "x-atoll-token"
"""The gRPC metadata header (and HTTP header) a proxy sends its token in."""

ZONE_KEY_PREFIX = "zone-token-signing-key-"
ZONE_REVOCATIONS = "zone-token-revocations"
REVOCATION_ATTEMPTS = 16


def dataplane_key_prefix(mesh: str) -> str:
    return f"dataplane-token-signing-key-{mesh}-"


def dataplane_revocations(mesh: str) -> str:
    return f"dataplane-token-revocations-{mesh}"


# --- key rings and revocation lists --------------------------------------------------------------


class KeyRing:
    """The signing keys of one kind of token, as secrets ``<prefix>0001``... (module docstring)."""

    def __init__(self, store: Store, prefix: str, mesh: str | None) -> None:
        self._store = store
        self._prefix = prefix
        self._mesh = mesh
        self._lock = asyncio.Lock()

    def _name(self, serial: int) -> str:
        return f"{self._prefix}{serial:04d}"

    async def _serials(self) -> list[int]:
        out = []
        for name in await secrets.names_with_prefix(self._store, self._prefix, self._mesh):
            suffix = name[len(self._prefix) :]
            if suffix.isdigit():
                out.append(int(suffix))
        return sorted(out)

    async def keys(self) -> list[SigningKey]:
        """Every stored key, oldest first."""
        out = []
        for serial in await self._serials():
            pem = await secrets.read(self._store, self._name(serial), self._mesh)
            if pem is not None:
                out.append(SigningKey(self._name(serial), pem.decode()))
        return out

    async def public_keys(self) -> dict[str, str]:
        """Key id -> public key PEM, for verification."""
        return {k.kid: k.public_pem for k in await self.keys()}

    async def current(self) -> SigningKey:
        """The newest key; the first one is created if there is none."""
        keys = await self.keys()
        if keys:
            return keys[-1]
        async with self._lock:
            return await self._create(1)

    async def rotate(self) -> SigningKey:
        """Create the next key (it signs from now on; older keys still verify)."""
        async with self._lock:
            serials = await self._serials()
            return await self._create((serials[-1] if serials else 0) + 1)

    async def remove(self, kid: str) -> None:
        """Delete a key: tokens it signed stop verifying. ``NotFound`` if there is no such key."""
        if not kid.startswith(self._prefix):
            raise NotFound(f'no signing key "{kid}"')
        await self._store.delete(secrets.secret_type(self._mesh), kid, self._mesh)

    async def _create(self, serial: int) -> SigningKey:
        name = self._name(serial)

        async def make() -> bytes:
            key = await asyncio.to_thread(jwt_tokens.generate_signing_key, name)
            return key.private_pem.encode("ascii")

        pem = await secrets.create_once(self._store, name, self._mesh, make)
        return SigningKey(name, pem.decode())


class RevocationList:
    """Revoked token ids kept as a JSON list in one secret."""

    def __init__(self, store: Store, name: str, mesh: str | None) -> None:
        self._store = store
        self._name = name
        self._mesh = mesh

    async def ids(self) -> set[str]:
        data = await secrets.read(self._store, self._name, self._mesh)
        return set(_decode_ids(data)) if data is not None else set()

    async def add(self, jti: str) -> None:
        """Add ``jti`` (idempotent), retrying when another writer updated the list meanwhile."""
        for _ in range(REVOCATION_ATTEMPTS):
            current = await secrets.read_resource(self._store, self._name, self._mesh)
            if current is None:
                created = await secrets.create_once(
                    self._store, self._name, self._mesh, _async_bytes(_encode_ids({jti}))
                )
                if jti in _decode_ids(created):
                    return
                continue
            ids = set(_decode_ids(secrets.secret_value(current)))
            if jti in ids:
                return
            ids.add(jti)
            updated = secrets.secret_resource(self._name, self._mesh, _encode_ids(ids))
            try:
                await self._store.update(updated.with_meta(version=current.meta.version))
                return
            except (Conflict, NotFound):
                continue
        raise Conflict(f"could not update {self._name}: too many concurrent writers")


def _async_bytes(data: bytes) -> Any:
    async def make() -> bytes:
        return data

    return make


def _encode_ids(ids: set[str]) -> bytes:
    return json.dumps(sorted(ids)).encode()


def _decode_ids(data: bytes) -> list[str]:
    try:
        value = json.loads(data.decode() or "[]")
    except (ValueError, UnicodeDecodeError):
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


# --- issuing -------------------------------------------------------------------------------------


class TokenIssuer:
    """Issues, rotates and revokes dataplane and zone tokens over a store."""

    def __init__(self, store: Store, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock
        self._rings: dict[str | None, KeyRing] = {}

    def dataplane_keys(self, mesh: str) -> KeyRing:
        return self._rings.setdefault(mesh, KeyRing(self._store, dataplane_key_prefix(mesh), mesh))

    def zone_keys(self) -> KeyRing:
        return self._rings.setdefault(None, KeyRing(self._store, ZONE_KEY_PREFIX, None))

    async def issue_dataplane(
        self,
        *,
        mesh: str,
        name: str | None,
        tags: Mapping[str, Sequence[str]] | None = None,
        valid_for: timedelta,
        proxy_type: ProxyType = "dataplane",
    ) -> str:
        """A dataplane token for ``mesh`` (which must exist: ``InvalidInput`` naming ``mesh``)."""
        try:
            await self._store.get("Mesh", mesh)
        except NotFound:
            raise InvalidInput(FieldError("mesh", f'mesh "{mesh}" does not exist'), title="unknown mesh") from None
        key = await self.dataplane_keys(mesh).current()
        return jwt_tokens.issue_dataplane_token(
            key, mesh=mesh, name=name, tags=tags, valid_for=valid_for, now=self._clock(), proxy_type=proxy_type
        )

    async def issue_zone(self, *, zone: str, scope: Sequence[ZoneScope], valid_for: timedelta) -> str:
        key = await self.zone_keys().current()
        return jwt_tokens.issue_zone_token(key, zone=zone, scope=scope, valid_for=valid_for, now=self._clock())

    async def rotate_signing_key(self, mesh: str | None) -> str:
        """A new newest key for dataplane tokens of ``mesh`` (zone tokens for ``None``); its id."""
        ring = self.zone_keys() if mesh is None else self.dataplane_keys(mesh)
        return (await ring.rotate()).kid

    async def remove_signing_key(self, mesh: str | None, kid: str) -> None:
        ring = self.zone_keys() if mesh is None else self.dataplane_keys(mesh)
        await ring.remove(kid)

    async def revoke(self, mesh: str | None, jti: str) -> None:
        """Revoke a dataplane token of ``mesh`` (a zone token for ``None``) by its id."""
        if mesh is None:
            await RevocationList(self._store, ZONE_REVOCATIONS, None).add(jti)
        else:
            await RevocationList(self._store, dataplane_revocations(mesh), mesh).add(jti)


# --- verifying -----------------------------------------------------------------------------------


class ProxyAuthenticator(Protocol):
    """What a control plane asks before it serves a proxy or a zone."""

    async def verify_dataplane(self, token: str | None, dataplane: Resource[Any]) -> None: ...

    async def verify_zone(self, token: str | None, zone: str, scope: ZoneScope) -> None: ...


class NoAuth:
    """``--auth none``: every proxy and zone is let in without a token."""

    async def verify_dataplane(self, token: str | None, dataplane: Resource[Any]) -> None:
        return None

    async def verify_zone(self, token: str | None, zone: str, scope: ZoneScope) -> None:
        return None


class TokenVerifier:
    """Verifies proxies' and zones' tokens against the stored keys and revocations."""

    def __init__(self, store: Store, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock

    async def dataplane_claims(
        self, token: str | None, dataplane: Resource[Any], proxy_type: ProxyType = "dataplane"
    ) -> DataplaneClaims:
        """The claims of ``token`` if it lets ``dataplane`` in; ``Unauthenticated``/``Forbidden``."""
        what = f"Dataplane {dataplane.mesh}/{dataplane.name}"
        if not token or not token.strip():
            raise Unauthenticated(f"{what}: no dataplane token (give the agent one with --token-file)")
        mesh_flag = f"--mesh {dataplane.mesh} --name {dataplane.name}"
        wrong_kind(token, jwt_tokens.DATAPLANE_KIND, what, f"atoll token dataplane {mesh_flag}")
        try:
            mesh = jwt_tokens.unverified_mesh(token)
            keys = await KeyRing(self._store, dataplane_key_prefix(mesh), mesh).public_keys()
            revoked = await RevocationList(self._store, dataplane_revocations(mesh), mesh).ids()
            claims = jwt_tokens.verify_dataplane_token(token, keys=keys, now=self._clock(), revoked_ids=revoked)
        except InvalidToken as e:
            raise Unauthenticated(f"{what}: dataplane token rejected ({e.code}): {e.reason}") from None
        spec = dataplane.spec
        tags = dataplane_tag_set(spec) if isinstance(spec, DataplaneSpec) else {}
        reason = jwt_tokens.claims_match(claims, dataplane.mesh or "", dataplane.name, tags, proxy_type)
        if reason is not None:
            raise Forbidden(f"{what}: dataplane token does not allow it: {reason}")
        return claims

    async def verify_dataplane(self, token: str | None, dataplane: Resource[Any]) -> None:
        await self.dataplane_claims(token, dataplane)

    async def zone_claims(self, token: str | None, zone: str, scope: ZoneScope) -> ZoneClaims:
        """The claims of ``token`` if it lets ``zone`` in for ``scope``; ``Unauthenticated``/``Forbidden``."""
        what = f"zone {zone} ({scope})"
        if not token or not token.strip():
            raise Unauthenticated(f"{what}: no zone token")
        wrong_kind(token, jwt_tokens.ZONE_KIND, what, f"atoll token zone --zone {zone} --scope {scope}")
        try:
            keys = await KeyRing(self._store, ZONE_KEY_PREFIX, None).public_keys()
            revoked = await RevocationList(self._store, ZONE_REVOCATIONS, None).ids()
            claims = jwt_tokens.verify_zone_token(token, keys=keys, now=self._clock(), revoked_ids=revoked)
        except InvalidToken as e:
            raise Unauthenticated(f"{what}: zone token rejected ({e.code}): {e.reason}") from None
        if claims.zone != zone:
            raise Forbidden(f'{what}: the zone token is for zone "{claims.zone}"')
        if scope not in claims.scope:
            raise Forbidden(
                f"{what}: the zone token is for {', '.join(claims.scope)}, not {scope};"
                f" make one with: atoll token zone --zone {zone} --scope {scope}"
            )
        return claims

    async def verify_zone(self, token: str | None, zone: str, scope: ZoneScope) -> None:
        await self.zone_claims(token, zone, scope)


_KIND_NAMES = {jwt_tokens.DATAPLANE_KIND: "a dataplane token", jwt_tokens.ZONE_KIND: "a zone token"}


def wrong_kind(token: str, expected: str, what: str, command: str) -> None:
    """``Unauthenticated`` when ``token`` is plainly a token of another kind than ``expected`` (read
    without verifying: only to say which token to use), naming ``command`` that makes the right one."""
    try:
        kind = jwt_tokens.unverified_claims(token.strip()).get("kind")
    except InvalidToken:
        return  # not a token at all: verification says why
    if kind == expected or kind not in _KIND_NAMES:
        return
    raise Unauthenticated(
        f"{what}: wrong kind of token: this is {_KIND_NAMES[kind]}, {what} needs {_KIND_NAMES[expected]};"
        f" make one with: {command}"
    )


def proxy_authenticator(auth: str, store: Store, clock: Clock = utc_now) -> ProxyAuthenticator:
    """``TokenVerifier`` for ``auth="token"``, ``NoAuth`` for ``"none"`` (the CP's ``--auth``)."""
    if auth == "none":
        return NoAuth()
    if auth == "token":
        return TokenVerifier(store, clock)
    raise ValueError(f"auth must be token or none, got {auth!r}")
