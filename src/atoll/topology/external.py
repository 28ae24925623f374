"""ExternalServices as views: where one is (``host:port``), its protocol, its TLS, its zone (pure).

``external_view`` resolves one ``ExternalService`` resource: its address split into host and port,
its ``networking.tls`` turned into ``ExternalTls`` (the CA from inline base64, inline text, a file
or a secret; SNI; renegotiation and hostname checks), its ``kuma.io/protocol`` and ``kuma.io/zone``
tags read. How a proxy reaches it (directly, or through a zone egress) is ``atoll.topology.index``'s
business; the resulting values are frozen and hashable like every other view.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from atoll.resources.meta import Resource
from atoll.resources.models.external_service import DataSource, ExternalServiceSpec
from atoll.topology.tags import ZONE_TAG, Protocol, Tags, protocol_of

__all__ = ["ExternalTls", "ExternalView", "external_view"]


@dataclass(frozen=True, slots=True)
class ExternalTls:
    """TLS that a proxy originates to an external service (``networking.tls`` of the ExternalService).

    ``ca_pem``/``ca_file``: where the CA that verifies the server comes from (inline PEM text, or a file
    on the proxy's host); neither means no verification is configured. ``server_name``: the SNI and the
    DNS name the server's certificate must carry (unless ``skip_hostname_verification``)."""

    ca_pem: str | None = None
    ca_file: str | None = None
    ca_secret: str | None = None
    server_name: str | None = None
    allow_renegotiation: bool = False
    skip_hostname_verification: bool = False


@dataclass(frozen=True, slots=True)
class ExternalView:
    """An ExternalService of the mesh: ``host:port`` outside the mesh, its protocol and TLS.

    ``zone`` is its ``kuma.io/zone`` tag: pinned to that zone (reached through that zone's ingress and
    egress), or ``None`` for everywhere."""

    mesh: str
    service: str
    host: str
    port: int
    protocol: Protocol
    tags: Tags
    tls: ExternalTls | None = None
    zone: str | None = None


def _data_source(ds: DataSource | None) -> tuple[str | None, str | None, str | None]:
    if ds is None:
        return None, None, None
    if ds.inline is not None:
        return base64.b64decode(ds.inline).decode(errors="replace"), None, None
    return ds.inline_string, ds.file, ds.secret


def external_view(es: Resource[ExternalServiceSpec]) -> ExternalView:
    """The view of one ExternalService (its address split, its TLS settings resolved)."""
    host, port = es.spec.networking.host_port
    t = es.spec.networking.tls
    tls: ExternalTls | None = None
    if t is not None and t.enabled:
        ca_pem, ca_file, ca_secret = _data_source(t.ca_cert)
        tls = ExternalTls(
            ca_pem=ca_pem,
            ca_file=ca_file,
            ca_secret=ca_secret,
            server_name=t.sni_name,
            allow_renegotiation=bool(t.allow_renegotiation),
            skip_hostname_verification=bool(t.skip_hostname_verification),
        )
    tags = Tags(es.spec.tags)
    return ExternalView(
        mesh=es.mesh or "",
        service=es.spec.service,
        host=host,
        port=port,
        protocol=protocol_of(tags),
        tags=tags,
        tls=tls,
        zone=tags.get(ZONE_TAG) or None,
    )
