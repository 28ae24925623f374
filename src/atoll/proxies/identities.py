"""Workload identities of the proxies a zone CP serves: issued from the mesh CA, reused, rotated.

``IdentityBook`` keeps, per proxy, the certificate last issued to it. ``identity_for`` returns that
certificate while it is still good — same CA, same services and tags, and not yet at its rotation
point — and issues a fresh one (EC P-256, ~0.4 ms) otherwise. A certificate rotates at half its
lifetime (``dpCert.rotation.expiration``, default 24 h), so a proxy always holds one with at least half
its life left, and a CP that is briefly away never lets a proxy's certificate expire.
``seconds_until_due`` tells the reconciler when the next rotation is due, so rotation is a timer, not
a poll. Certificates are delivered over SDS on the proxy's ADS stream and never written to disk.

The book's CAs come from a ``CaSource`` (``refresh_cas``, before each reconcile pass, for the meshes the
pass touches): a mesh without mTLS has none; a CA that cannot be loaded leaves the last one in place.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from atoll.pki import CaBundle, issue_identity
from atoll.resources import Resource
from atoll.resources.base import parse_duration
from atoll.resources.models.dataplane import DataplaneSpec
from atoll.resources.models.mesh import MeshSpec
from atoll.security.mesh_ca import dataplane_tag_set
from atoll.topology import EGRESS_SERVICE, Identity

log = logging.getLogger(__name__)

CaSource = Callable[[Resource[MeshSpec]], Awaitable[CaBundle | None]]
"""Where a mesh's CA comes from: created by the CP that is its authority, or read (synced from global)."""

DEFAULT_LIFETIME = timedelta(hours=24)
ROTATE_AT = 0.5  # fraction of the lifetime after which a new certificate is issued


@dataclass(frozen=True, slots=True)
class _Issued:
    identity: Identity
    ca_pem: str
    subject: tuple[tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]]
    serial: int
    rotate_at: datetime
    not_after: datetime
    issued_at: datetime


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def lifetime(mesh: Resource[MeshSpec]) -> timedelta:
    backend = mesh.spec.mtls.enabled() if mesh.spec.mtls is not None else None
    rotation = backend.dp_cert.rotation if backend is not None and backend.dp_cert is not None else None
    if rotation is None or rotation.expiration is None:
        return DEFAULT_LIFETIME
    return timedelta(seconds=parse_duration(rotation.expiration))


class IdentityBook:
    def __init__(self, *, zone: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._zone = zone
        self._clock = clock
        self._cas: dict[str, CaBundle] = {}
        self._issued: dict[str, _Issued] = {}
        self._regenerations: dict[str, int] = {}  # certificates issued per proxy, for its insight
        self.issued_total = 0

    def set_ca(self, mesh: str, ca: CaBundle | None) -> bool:
        """Record the mesh's CA; True when it changed (every proxy of the mesh needs a new identity)."""
        old = self._cas.get(mesh)
        if ca is None:
            self._cas.pop(mesh, None)
        else:
            self._cas[mesh] = ca
        return old != ca

    async def refresh_cas(
        self, names: Iterable[str], meshes: Mapping[str, Resource[MeshSpec]], source: CaSource
    ) -> None:
        """Load (or, where this CP is the authority, create) the CA of each of the meshes ``names``
        with mTLS on; forget the CA of the others."""
        for name in sorted(names):
            mesh = meshes.get(name)
            enabled = mesh is not None and mesh.spec.mtls is not None and mesh.spec.mtls.enabled() is not None
            try:
                ca = await source(mesh) if mesh is not None and enabled else None
            except Exception:
                log.exception("cannot load the CA of mesh %s; its proxies keep their configuration", name)
                continue
            self.set_ca(name, ca)

    def has_ca(self, mesh: str) -> bool:
        return mesh in self._cas

    def identity_for(self, node: str, mesh: Resource[MeshSpec], dp: Resource[DataplaneSpec]) -> Identity | None:
        """The proxy's current identity (issuing a new one when needed); None while the mesh has no CA."""
        return self._identity(node, mesh, dataplane_tag_set(dp.spec))

    def egress_identity_for(self, node: str, mesh: Resource[MeshSpec]) -> Identity | None:
        """A zone egress's identity in ``mesh``: ``spiffe://<mesh>/zone-egress`` (one per mesh it
        terminates mTLS for, kept under ``<node>#<mesh>``); None while the mesh has no CA."""
        return self._identity(f"{node}#{mesh.name}", mesh, {"kuma.io/service": {EGRESS_SERVICE}})

    def _identity(self, node: str, mesh: Resource[MeshSpec], tags: dict[str, set[str]]) -> Identity | None:
        ca = self._cas.get(mesh.name)
        if ca is None:
            return None
        tags.setdefault("kuma.io/zone", set()).add(self._zone)
        services = tuple(sorted(tags.get("kuma.io/service", ())))
        subject = (services, tuple(sorted((k, tuple(sorted(v))) for k, v in tags.items())))
        now = self._clock()
        held = self._issued.get(node)
        if held is not None and held.ca_pem == ca.cert_pem and held.subject == subject and now < held.rotate_at:
            return held.identity
        life = lifetime(mesh)
        issued = issue_identity(
            ca,
            mesh=mesh.name,
            services=list(services),
            tags={k: sorted(v) for k, v in tags.items()},
            valid_for=life,
            now=now,
        )
        identity = Identity(cert_pem=issued.cert_pem, key_pem=issued.key_pem, ca_pem=ca.cert_pem)
        rotate_at = issued.not_before + (issued.not_after - issued.not_before) * ROTATE_AT
        self._issued[node] = _Issued(
            identity, ca.cert_pem, subject, issued.serial, rotate_at, issued.not_after, issued.not_before
        )
        self._regenerations[node] = self._regenerations.get(node, 0) + 1
        self.issued_total += 1
        return identity

    def certificate(self, node: str) -> dict[str, Any] | None:
        """The insight's ``mTLS`` part for ``node``: its certificate's serial (hex) and expiry, when
        it was issued, and how many certificates this CP issued it; ``None`` before the first."""
        held = self._issued.get(node)
        if held is None:
            return None
        return {
            "certificateSerial": f"{held.serial:x}",
            "certificateExpirationTime": _iso(held.not_after),
            "lastCertificateRegeneration": _iso(held.issued_at),
            "certificateRegenerations": self._regenerations.get(node, 0),
        }

    def serial(self, node: str) -> int | None:
        held = self._issued.get(node)
        return held.serial if held is not None else None

    def forget(self, node: str) -> None:
        self._issued.pop(node, None)
        self._regenerations.pop(node, None)
        for key in [k for k in self._issued if k.startswith(node + "#")]:
            del self._issued[key]
            self._regenerations.pop(key, None)

    def due(self) -> list[str]:
        """Proxies whose certificate (one of them, for an egress) reached its rotation point."""
        now = self._clock()
        return sorted({n.partition("#")[0] for n, i in self._issued.items() if now >= i.rotate_at})

    def seconds_until_due(self) -> float | None:
        if not self._issued:
            return None
        soonest = min(i.rotate_at for i in self._issued.values())
        return max(0.0, (soonest - self._clock()).total_seconds())
