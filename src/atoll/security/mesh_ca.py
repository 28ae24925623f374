"""The builtin CA of each mesh, kept in the store, and the identities it issues.

``CaManager.ensure_ca(mesh)`` reads the Mesh's ``mtls``: without an enabled backend it returns
``None``; with a ``builtin`` one it returns that backend's CA, creating it on first use as two
Secrets of the mesh, ``ca-builtin-key-<backend>`` and ``ca-builtin-cert-<backend>`` (PEM, base64 in
``data``). RSA size and lifetime come from the backend's ``conf.caCert`` (``RSAbits``, default
2048; ``expiration``, default 10y).

Creation is race-safe across tasks and across control-plane instances sharing a store: the key is
created first (first writer wins, the others read it back); then the certificate is self-signed
from *the stored key* and created the same way. Whoever loses either race uses the winner's value,
so every caller gets the same pair, and a certificate never belongs to another key. Within one
process a lock per (mesh, backend) spares the losing tasks their RSA key generation, which runs in
a worker thread so that the event loop keeps serving.

``issue_for_dataplane`` issues a workload identity for a Dataplane: its services and every tag value
of its inbounds (or gateway), valid for the backend's ``dpCert.rotation.expiration`` (default 24h).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from atoll.errors import ConfigError, FieldError, InvalidInput
from atoll.pki import CaBundle, WorkloadCertificate, check_ca, generate_ca_key, issue_identity, self_sign_ca
from atoll.pki.certificates import DEFAULT_CA_BITS, SERVICE_TAG
from atoll.resources.base import parse_duration
from atoll.resources.meta import Resource
from atoll.resources.models.dataplane import DataplaneSpec
from atoll.resources.models.mesh import MeshSpec, MtlsBackend
from atoll.security import secrets
from atoll.security.secrets import Clock, utc_now
from atoll.store.protocol import Store

DEFAULT_CA_EXPIRATION = "10y"
DEFAULT_DP_CERT_EXPIRATION = "24h"


def ca_cert_secret(backend: str) -> str:
    return f"ca-builtin-cert-{backend}"


def ca_key_secret(backend: str) -> str:
    return f"ca-builtin-key-{backend}"


def dataplane_tag_set(spec: DataplaneSpec) -> dict[str, set[str]]:
    """Every value of every tag of a Dataplane's inbounds (or its gateway): tag -> values."""
    out: dict[str, set[str]] = {}
    tag_maps: list[Mapping[str, str]] = [ib.tags for ib in spec.networking.inbound]
    if spec.networking.gateway is not None:
        tag_maps.append(spec.networking.gateway.tags)
    for tags in tag_maps:
        for k, v in tags.items():
            out.setdefault(k, set()).add(v)
    return out


class CaManager:
    """Builtin CAs of meshes, stored as Secrets (see the module docstring)."""

    def __init__(self, store: Store, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def ensure_ca(self, mesh: Resource[MeshSpec]) -> CaBundle | None:
        """The CA of the mesh's enabled mTLS backend, created once; ``None`` without mTLS."""
        backend = _enabled_backend(mesh)
        if backend is None:
            return None
        conf = backend.builtin_conf.ca_cert
        bits = (conf.rsa_bits if conf is not None else None) or DEFAULT_CA_BITS
        expiration = (conf.expiration if conf is not None else None) or DEFAULT_CA_EXPIRATION
        valid_for = timedelta(seconds=parse_duration(expiration))
        lock = self._locks.setdefault((mesh.name, backend.name), asyncio.Lock())
        async with lock:

            async def new_key() -> bytes:
                return (await asyncio.to_thread(generate_ca_key, bits)).encode("ascii")

            key_pem = (await secrets.create_once(self._store, ca_key_secret(backend.name), mesh.name, new_key)).decode()

            async def new_cert() -> bytes:
                return self_sign_ca(key_pem, mesh.name, valid_for=valid_for, now=self._clock()).encode("ascii")

            cert_pem = (
                await secrets.create_once(self._store, ca_cert_secret(backend.name), mesh.name, new_cert)
            ).decode()
        bundle = CaBundle(cert_pem=cert_pem, key_pem=key_pem)
        check_ca(bundle)
        return bundle

    async def get_ca(self, mesh: str, backend: str) -> CaBundle | None:
        """The stored CA of ``backend`` in ``mesh``; ``None`` if it has not been created."""
        key = await secrets.read(self._store, ca_key_secret(backend), mesh)
        cert = await secrets.read(self._store, ca_cert_secret(backend), mesh)
        if key is None or cert is None:
            return None
        return CaBundle(cert_pem=cert.decode(), key_pem=key.decode())

    async def issue_for_dataplane(
        self, mesh: Resource[MeshSpec], dataplane: Resource[DataplaneSpec], *, extra_tags: Mapping[str, str] = {}
    ) -> WorkloadCertificate | None:
        """A workload identity for ``dataplane`` from the mesh CA; ``None`` when the mesh has no mTLS.

        ``extra_tags`` are added to every inbound's tags (e.g. ``kuma.io/zone`` on a zone CP)."""
        backend = _enabled_backend(mesh)
        if backend is None:
            return None
        ca = await self.ensure_ca(mesh)
        assert ca is not None
        tags = dataplane_tag_set(dataplane.spec)
        for k, v in extra_tags.items():
            tags.setdefault(k, set()).add(v)
        services = sorted(tags.get(SERVICE_TAG, set()))
        rotation = backend.dp_cert.rotation if backend.dp_cert is not None else None
        expiration = (rotation.expiration if rotation is not None else None) or DEFAULT_DP_CERT_EXPIRATION
        return issue_identity(
            ca,
            mesh=mesh.name,
            services=services,
            tags={k: sorted(v) for k, v in tags.items()},
            valid_for=timedelta(seconds=parse_duration(expiration)),
            now=self._clock(),
        )


def _enabled_backend(mesh: Resource[Any]) -> MtlsBackend | None:
    spec = mesh.spec
    if not isinstance(spec, MeshSpec):
        raise TypeError(f"expected a Mesh, got {mesh.type}")
    mtls = spec.mtls
    if mtls is None or not mtls.enabled_backend:
        return None
    for i, b in enumerate(mtls.backends):
        if b.name != mtls.enabled_backend:
            continue
        if b.type != "builtin":
            raise InvalidInput(
                FieldError(f"mtls.backends[{i}].type", f'unsupported CA backend type "{b.type}"; supported: builtin'),
                title=f"mesh {mesh.name}: unsupported mTLS backend",
            )
        return b
    raise ConfigError(f'mesh {mesh.name}: mtls.enabledBackend "{mtls.enabled_backend}" is not one of the backends')
