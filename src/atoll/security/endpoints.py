"""The bodies of the token endpoints of the REST API, validated field by field.

``TokenEndpoints`` implements what ``atoll.api.deps.ApiDependencies(tokens=...)`` calls for
``POST /tokens/dataplane``, ``POST /tokens/zone`` and ``POST /tokens/revocations`` (the API checks
that the caller is an admin first). Every problem in a body is reported at once as ``InvalidInput``
with one ``FieldError`` per field (``validFor: invalid duration "3x"``, ``scope[1]: must be one of
cp, ingress, egress``); unknown fields are errors too.

Bodies (JSON):

- dataplane: ``{mesh, name?, tags?: {tag: value | [values]}, validFor?: "720h", proxyType?: dataplane|ingress|egress}``,
  and Kuma's spellings kumactl sends: ``type`` for ``proxyType`` (``""``: dataplane), ``workload``
  (must be empty: Atoll binds no token to a workload), ``name: ""`` for no name
- zone: ``{zone, scope: ["cp"|"ingress"|"egress", ...], validFor?}``
- revocation: ``{kind: dataplane|zone, mesh? (dataplane; else taken from the token), token | jti}``
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, cast

from atoll.errors import FieldError, InvalidInput
from atoll.pki import PROXY_TYPES, ZONE_SCOPES, InvalidToken, ProxyType, ZoneScope, token_id, unverified_claims
from atoll.resources.base import check_name, parse_duration
from atoll.security.token_service import TokenIssuer

DEFAULT_VALID_FOR = "720h"
MAX_VALID_FOR = timedelta(days=3650)


class _Body:
    """Reads typed fields from a request body, collecting one ``FieldError`` per problem."""

    def __init__(self, body: Mapping[str, Any], known: set[str]) -> None:
        self.body = body
        self.errors: list[FieldError] = [
            FieldError(k, f"unknown field; known: {', '.join(sorted(known))}") for k in body if k not in known
        ]

    def add(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def name(self, key: str, *, required: bool) -> str | None:
        value = self.body.get(key)
        if value is None:
            if required:
                self.add(key, "required")
            return None
        if not isinstance(value, str):
            self.add(key, "must be a string")
            return None
        try:
            return check_name(value)
        except ValueError as e:
            self.add(key, str(e))
            return None

    def choice(self, key: str, choices: tuple[str, ...], default: str | None) -> str | None:
        value = self.body.get(key, default)
        if value is None:
            self.add(key, f"required: one of {', '.join(choices)}")
            return None
        if value not in choices:
            self.add(key, f"must be one of {', '.join(choices)}, got {value!r}")
            return None
        return cast(str, value)

    def valid_for(self) -> timedelta:
        raw = self.body.get("validFor", DEFAULT_VALID_FOR)
        try:
            if not isinstance(raw, str):
                raise ValueError(f'must be a duration such as "24h", got {raw!r}')
            seconds = parse_duration(raw)
        except ValueError as e:
            self.add("validFor", str(e))
            return timedelta(hours=1)
        if seconds < 1:
            self.add("validFor", f"must be at least 1s, got {raw!r}")
        elif timedelta(seconds=seconds) > MAX_VALID_FOR:
            self.add("validFor", f"must be at most 10y, got {raw!r}")
        return timedelta(seconds=max(seconds, 1))

    def done(self, what: str) -> None:
        if self.errors:
            raise InvalidInput(self.errors, title=f"invalid {what}")


def _kuma_type(b: _Body) -> str:
    """The default of ``proxyType``: Kuma's ``type`` field when given (kumactl sends ``""`` for a
    dataplane), else ``dataplane``; both given and different is an error."""
    raw = b.body.get("type")
    if raw in (None, ""):
        return "dataplane"
    if raw not in PROXY_TYPES:
        b.add("type", f"must be one of {', '.join(PROXY_TYPES)}, got {raw!r}")
        return "dataplane"
    given = b.body.get("proxyType")
    if given is not None and given != raw:
        b.add("type", f'"{raw}" contradicts proxyType "{given}" (both name the proxy type; give one)')
    return cast(str, raw)


class TokenEndpoints:
    """Validates token requests and hands them to a ``TokenIssuer``."""

    def __init__(self, issuer: TokenIssuer) -> None:
        self._issuer = issuer

    async def issue_dataplane(self, body: Mapping[str, Any]) -> dict[str, Any]:
        b = _Body(body, {"mesh", "name", "tags", "validFor", "proxyType", "type", "workload"})
        mesh = b.name("mesh", required=True)
        name = b.name("name", required=False) if body.get("name") != "" else None
        tags = _tags(b, body.get("tags"))
        valid_for = b.valid_for()
        proxy_type = b.choice("proxyType", PROXY_TYPES, _kuma_type(b))
        if body.get("workload") not in (None, ""):
            b.add("workload", "Atoll binds tokens to a name and tags, not to a workload: leave it empty")
        b.done("dataplane token request")
        assert mesh is not None
        token = await self._issuer.issue_dataplane(
            mesh=mesh, name=name, tags=tags, valid_for=valid_for, proxy_type=cast(ProxyType, proxy_type)
        )
        return {"token": token}

    async def issue_zone(self, body: Mapping[str, Any]) -> dict[str, Any]:
        b = _Body(body, {"zone", "scope", "validFor"})
        zone = b.name("zone", required=True)
        scope: list[ZoneScope] = []
        raw = body.get("scope")
        if raw is None:
            b.add("scope", f"required: a list of {', '.join(ZONE_SCOPES)}")
        elif not isinstance(raw, list) or not raw:
            b.add("scope", f"must be a non-empty list of {', '.join(ZONE_SCOPES)}")
        else:
            for i, s in enumerate(raw):
                if s not in ZONE_SCOPES:
                    b.add(f"scope[{i}]", f"must be one of {', '.join(ZONE_SCOPES)}, got {s!r}")
                elif s not in scope:
                    scope.append(s)
        valid_for = b.valid_for()
        b.done("zone token request")
        assert zone is not None
        return {"token": await self._issuer.issue_zone(zone=zone, scope=scope, valid_for=valid_for)}

    async def revoke(self, body: Mapping[str, Any]) -> dict[str, Any]:
        b = _Body(body, {"kind", "mesh", "token", "jti"})
        kind = b.choice("kind", ("dataplane", "zone"), None)
        mesh = b.name("mesh", required=False)
        token, jti = body.get("token"), body.get("jti")
        if (token is None) == (jti is None):
            b.add("token", "give exactly one of token or jti")
        elif token is not None:
            if not isinstance(token, str):
                b.add("token", "must be a string")
            else:
                try:
                    jti = token_id(token)
                    claim_mesh = unverified_claims(token).get("mesh")
                except InvalidToken as e:
                    b.add("token", e.reason)
                else:
                    if kind == "dataplane":
                        if mesh is None and isinstance(claim_mesh, str):
                            mesh = claim_mesh
                        elif mesh is not None and claim_mesh != mesh:
                            b.add("mesh", f'"{mesh}" is not the mesh of the token ("{claim_mesh}")')
        elif not isinstance(jti, str) or not jti:
            b.add("jti", "must be a non-empty string")
        if kind == "dataplane" and mesh is None and not any(e.path in ("mesh", "token") for e in b.errors):
            b.add("mesh", "required for kind dataplane (the mesh the token belongs to)")
        if kind == "zone" and body.get("mesh") is not None:
            b.add("mesh", "zone tokens belong to no mesh")
        b.done("revocation request")
        assert isinstance(jti, str)
        await self._issuer.revoke(mesh if kind == "dataplane" else None, jti)
        return {"kind": kind, "mesh": mesh if kind == "dataplane" else None, "jti": jti, "revoked": True}


def _tags(b: _Body, raw: object) -> dict[str, list[str]] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        b.add("tags", "must be a mapping of tag: value (or a list of values)")
        return None
    out: dict[str, list[str]] = {}
    for k, v in raw.items():
        values = v if isinstance(v, list) else [v]
        if not values or not all(isinstance(x, str) and x for x in values):
            b.add(f"tags.{k}", "must be a non-empty string or a non-empty list of non-empty strings")
            continue
        out[str(k)] = [str(x) for x in values]
    return out
