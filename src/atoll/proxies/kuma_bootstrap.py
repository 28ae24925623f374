"""Kuma's bootstrap request and response (``kuma-dp run`` 2.14), spoken at Atoll's ``POST /bootstrap``.

Kuma's data plane agent posts a ``BootstrapRequest`` of its own shape (Kuma's source:
``pkg/xds/bootstrap/types/bootstrap_request.go``): ``mesh``, ``name``, ``proxyType``, the token as
``dataplaneToken``, the proxy's resource as ``dataplaneResource`` (a JSON *string*, or empty when the
Dataplane was applied before the proxy started: then the stored one is served, and the proxy does not
register it, so it is not removed when the proxy goes away), ``caCert``, ``workdir``, ``version.kumaDp``
and a dozen fields Atoll has no use for (``features``, ``dnsPort``, ``readinessPort``, ``otelEnv``, ...).
It wants back
``{"bootstrap": <base64 of an Envoy bootstrap in YAML>, "kumaSidecarConfiguration": {...}}``.

This module only translates; there is one way to make a proxy's bootstrap and it is
``DataplaneLifecycle.bootstrap``:

- ``is_kuma_request(body)``: Kuma's shape has no ``dataplane`` object and carries ``dataplaneResource``
  or ``version.kumaDp`` (Atoll's agent always sends ``dataplane``);
- ``KumaBootstrap.answer(body, cp_host)``: reads and checks Kuma's fields (every problem at once, each
  named by Kuma's field), turns them into Atoll's request (``proxyType``, ``dataplane``, ``token``,
  ``caCert``), has the lifecycle build the bootstrap with Envoy's admin on the Unix socket
  ``<workdir>/kuma-envoy-admin.sock`` (``kuma-dp`` reads that path from the bootstrap and reaches Envoy's
  admin through it for readiness and stats), and wraps it in Kuma's response. The bootstrap is JSON,
  which is YAML too, so ``kuma-dp`` parses it as it parses Kuma's own. Node id, node metadata and the
  token header are exactly what Atoll's agent gets, so the ADS server needs nothing new.

kuma-dp has one ``--ca-cert-file`` for the REST API and ADS. When ADS serves a self-signed certificate
(``ads_cert_pem``) that the ``caCert`` sent does not hold, Envoy could never verify the CP and would
retry ADS forever: such a request is refused, naming ``caCert`` and the way out.

Errors of the lifecycle come back with Kuma's field names (``dataplaneResource.networking...``,
``dataplaneToken``); they are 4xx answers, which ``kuma-dp`` shows once and does not retry.
Kuma's read-only fields in ``dataplaneResource`` (``kri``, ``creationTime``, ``modificationTime``, sent as
zero values by ``kuma-dp``) are dropped before decoding.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from atoll.errors import FieldError, InvalidInput, NotFound
from atoll.pki import bundle_trusts_self_signed
from atoll.resources.proxy_id import PROXY_TYPE_NAMES, ProxyType

__all__ = ["ADMIN_SOCKET", "KumaBootstrap", "is_kuma_request"]

ADMIN_SOCKET = "kuma-envoy-admin.sock"
"""The name of Envoy's admin socket in ``kuma-dp``'s work directory (Kuma's own choice, kept)."""

_READ_ONLY = ("kri", "creationTime", "modificationTime")
_MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
_MAX_NAME = 253


class _Lifecycle(Protocol):
    async def bootstrap(
        self, body: Mapping[str, Any], cp_host: str = ..., *, admin_socket: str | None = None, registers: bool = ...
    ) -> dict[str, Any]: ...

    async def stored_document(self, proxy_type: ProxyType, name: str, mesh: str | None) -> dict[str, Any]: ...


def is_kuma_request(body: Mapping[str, Any]) -> bool:
    """Whether ``body`` is Kuma's bootstrap request rather than Atoll's agent's."""
    if "dataplane" in body:
        return False
    version = body.get("version")
    return "dataplaneResource" in body or (isinstance(version, Mapping) and "kumaDp" in version)


@dataclass(frozen=True, slots=True)
class _Request:
    proxy_type: ProxyType
    mesh: str | None
    name: str | None
    token: str | None
    resource: dict[str, Any] | None
    ca_cert: str | None
    admin_socket: str | None


@dataclass(frozen=True, slots=True)
class KumaBootstrap:
    """Answers Kuma's bootstrap requests with the lifecycle's bootstraps (module docstring)."""

    lifecycle: _Lifecycle
    ads_cert_pem: str | None = None  # the certificate ADS serves, when it speaks TLS

    async def answer(self, body: Mapping[str, Any], cp_host: str) -> dict[str, Any]:
        req = _read(body)
        if req.ca_cert is not None and self.ads_cert_pem is not None:
            if bundle_trusts_self_signed(req.ca_cert, self.ads_cert_pem) is False:
                raise InvalidInput(
                    FieldError(
                        "caCert",
                        "does not verify this control plane's ADS certificate (self-signed, not in the file): "
                        "give kuma-dp --ca-cert-file a PEM file holding both the REST API's and ADS's "
                        "certificates, or serve both with one certificate",
                    ),
                    title="invalid bootstrap request",
                )
        doc = req.resource if req.resource is not None else await self._stored(req)
        atoll_request: dict[str, Any] = {"proxyType": req.proxy_type.value, "dataplane": doc}
        if req.token is not None:
            atoll_request["token"] = req.token
        if req.ca_cert is not None:
            atoll_request["caCert"] = req.ca_cert
        try:
            made = await self.lifecycle.bootstrap(
                atoll_request, cp_host, admin_socket=req.admin_socket, registers=req.resource is not None
            )
        except InvalidInput as e:
            raise InvalidInput([_kuma_field(err) for err in e.errors], title=e.title) from None
        return _response(made["bootstrap"], doc)

    async def _stored(self, req: _Request) -> dict[str, Any]:
        if not req.name or (req.proxy_type.in_mesh and not req.mesh):
            need = "mesh and name" if req.proxy_type.in_mesh else "name"
            raise InvalidInput(
                FieldError("dataplaneResource", f"required unless {need} name a resource applied beforehand"),
                title="invalid bootstrap request",
            )
        try:
            return await self.lifecycle.stored_document(req.proxy_type, req.name, req.mesh)
        except NotFound:
            what = req.proxy_type.resource_type
            where = f" in mesh {req.mesh}" if req.proxy_type.in_mesh else ""
            raise InvalidInput(
                FieldError("dataplaneResource", f"empty, and there is no {what} {req.name}{where} to start from"),
                title="invalid bootstrap request",
            ) from None


def _read(body: Mapping[str, Any]) -> _Request:
    """Kuma's fields, checked: every problem at once, named by Kuma's field names."""
    errors: list[FieldError] = []

    def text(key: str, limit: int) -> str | None:
        value = body.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            errors.append(FieldError(key, f"must be a string, got {type(value).__name__}"))
            return None
        if len(value) > limit:
            errors.append(FieldError(key, f"must be at most {limit} characters, got {len(value)}"))
            return None
        return value

    raw_type = body.get("proxyType") or "dataplane"
    proxy_type = ProxyType.DATAPLANE
    if raw_type in PROXY_TYPE_NAMES:
        proxy_type = ProxyType(raw_type)
    else:
        errors.append(FieldError("proxyType", f'must be one of {", ".join(PROXY_TYPE_NAMES)}, got "{raw_type}"'))
    mesh, name = text("mesh", _MAX_NAME), text("name", _MAX_NAME)
    token = text("dataplaneToken", 64 * 1024)
    ca_cert = text("caCert", 256 * 1024)
    workdir = text("workdir", 4096)
    admin_socket = None
    if workdir is not None:
        admin_socket = workdir.rstrip("/") + "/" + ADMIN_SOCKET
        if not workdir.startswith("/"):
            errors.append(FieldError("workdir", f'must be an absolute path, got "{workdir}"'))
        elif len(admin_socket.encode()) > _MAX_SOCKET_PATH:
            errors.append(
                FieldError(
                    "workdir",
                    f"too long for Envoy's admin socket {admin_socket} (at most {_MAX_SOCKET_PATH} bytes): "
                    "give kuma-dp a shorter --work-dir",
                )
            )
    resource = _resource(body.get("dataplaneResource"), errors)
    if resource is not None:
        for key, given in (("mesh", mesh), ("name", name)):
            if given is not None and key in resource and resource[key] != given:
                theirs = resource[key]
                errors.append(FieldError(key, f'"{given}" differs from the {key} "{theirs}" of dataplaneResource'))
    if errors:
        raise InvalidInput(errors, title="invalid bootstrap request")
    return _Request(proxy_type, mesh, name, token, resource, ca_cert, admin_socket)


def _resource(raw: object, errors: list[FieldError]) -> dict[str, Any] | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        errors.append(FieldError("dataplaneResource", "must be the resource as a JSON string"))
        return None
    try:
        doc = json.loads(raw)
    except ValueError as e:
        errors.append(FieldError("dataplaneResource", f"not valid JSON: {e}"))
        return None
    if not isinstance(doc, dict):
        errors.append(FieldError("dataplaneResource", "must be one JSON object"))
        return None
    return {k: v for k, v in doc.items() if k not in _READ_ONLY}


def _kuma_field(e: FieldError) -> FieldError:
    """An error of Atoll's request, named by the field of Kuma's request it came from."""
    for atoll, kuma in (("dataplane", "dataplaneResource"), ("token", "dataplaneToken")):
        if e.path == atoll or e.path.startswith((atoll + ".", atoll + "[")):
            return FieldError(kuma + e.path[len(atoll) :], e.message)
    return e


def _response(bootstrap: Mapping[str, Any], doc: Mapping[str, Any]) -> dict[str, Any]:
    """Kuma's ``BootstrapResponse``: the bootstrap as base64 bytes (JSON is valid YAML), and what
    ``kuma-dp`` reads of the proxy's networking."""
    networking = doc.get("networking")
    networking = networking if isinstance(networking, Mapping) else {}
    address = networking.get("address")
    return {
        "bootstrap": base64.b64encode(json.dumps(bootstrap, sort_keys=True).encode()).decode(),
        "kumaSidecarConfiguration": {
            "networking": {
                "isUsingTransparentProxy": bool(networking.get("transparentProxying")),
                "address": address if isinstance(address, str) else "",
                "corefileTemplate": None,
            },
            "metrics": {"aggregate": []},
        },
    }
