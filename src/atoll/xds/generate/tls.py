"""mTLS pieces of a sidecar: SDS secrets and the TLS contexts that refer to them (pure).

A proxy of a mesh with mTLS gets two SDS secrets over its ADS stream (``secrets``):
``identity_cert:secret:<mesh>`` (its certificate chain and key) and ``mesh_ca:secret:<mesh>``
(the mesh CA as a validation context). Listeners and clusters name them with
``sds_config {ads {}, resource_api_version V3}``, so a certificate rotation is one SDS push and
touches no listener or cluster.

- Inbound (``downstream_tls_context``): the proxy's certificate, a client certificate required and
  validated against the mesh CA, and its URI SAN must start with ``spiffe://<mesh>/`` (a
  certificate of another mesh sharing the CA is refused). HTTP inbounds offer ALPN ``h2``,
  ``http/1.1``, so the connection manager's AUTO codec follows the client.
- Outbound (``upstream_tls_context``): SNI ``<service>{mesh=<mesh>}`` (what a zone ingress routes
  on), the proxy's certificate as client certificate, and the server's certificate validated
  against the mesh CA with a URI SAN exactly ``spiffe://<mesh>/<service>``. ALPN ``h2`` for
  ``http2``/``grpc`` clusters, ``http/1.1`` for ``http``. An ExternalService reached through a zone
  egress: same SNI, the server must be ``spiffe://<mesh>/zone-egress`` (the egress terminates).
- To an ExternalService itself (``external_tls_context``): plain TLS with its own CA, no mesh identity.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import wrappers_pb2

from atoll.topology import ExternalTls, ExternalView, Identity, sni, spiffe_id
from atoll.xds.generate.envoy import ads_config_source, pack

__all__ = [
    "TLS_INSPECTOR",
    "TLS_TRANSPORT_SOCKET",
    "ca_secret_name",
    "downstream_tls_context",
    "external_tls_context",
    "identity_secret_name",
    "mesh_secrets",
    "tls_inspector",
    "transport_socket",
    "upstream_tls_context",
]

TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"


def identity_secret_name(mesh: str) -> str:
    return f"identity_cert:secret:{mesh}"


def ca_secret_name(mesh: str) -> str:
    return f"mesh_ca:secret:{mesh}"


def mesh_secrets(mesh: str, identity: Identity) -> list[secret_pb2.Secret]:
    """The proxy's identity certificate and the mesh CA, as SDS secrets."""
    return [
        secret_pb2.Secret(
            name=identity_secret_name(mesh),
            tls_certificate=common_pb2.TlsCertificate(
                certificate_chain=base_pb2.DataSource(inline_string=identity.cert_pem),
                private_key=base_pb2.DataSource(inline_string=identity.key_pem),
            ),
        ),
        secret_pb2.Secret(
            name=ca_secret_name(mesh),
            validation_context=common_pb2.CertificateValidationContext(
                trusted_ca=base_pb2.DataSource(inline_string=identity.ca_pem)
            ),
        ),
    ]


def _sds(name: str) -> secret_pb2.SdsSecretConfig:
    return secret_pb2.SdsSecretConfig(name=name, sds_config=ads_config_source())


def _common(mesh: str, san: string_pb2.StringMatcher, alpn: list[str]) -> tls_pb2.CommonTlsContext:
    return tls_pb2.CommonTlsContext(
        tls_certificate_sds_secret_configs=[_sds(identity_secret_name(mesh))],
        combined_validation_context=tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
            default_validation_context=common_pb2.CertificateValidationContext(
                match_typed_subject_alt_names=[
                    common_pb2.SubjectAltNameMatcher(san_type=common_pb2.SubjectAltNameMatcher.URI, matcher=san)
                ]
            ),
            validation_context_sds_secret_config=_sds(ca_secret_name(mesh)),
        ),
        alpn_protocols=alpn,
    )


def downstream_tls_context(mesh: str, protocol: str) -> tls_pb2.DownstreamTlsContext:
    """Inbound mTLS: a client certificate of this mesh is required."""
    alpn = ["h2", "http/1.1"] if protocol in ("http", "http2", "grpc") else []
    return tls_pb2.DownstreamTlsContext(
        common_tls_context=_common(mesh, string_pb2.StringMatcher(prefix=f"spiffe://{mesh}/"), alpn),
        require_client_certificate=wrappers_pb2.BoolValue(value=True),
    )


def upstream_tls_context(
    mesh: str,
    service: str,
    protocol: str,
    *,
    server_service: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> tls_pb2.UpstreamTlsContext:
    """Outbound mTLS to ``service``: SNI for the zone ingress/egress (with ``tags`` for a route's tag
    subset), the server must be ``service`` (or ``server_service``: ``zone-egress`` for an
    ExternalService reached through an egress)."""
    alpn = {"http": ["http/1.1"], "http2": ["h2"], "grpc": ["h2"]}.get(protocol, [])
    expected = spiffe_id(mesh, server_service or service)
    return tls_pb2.UpstreamTlsContext(
        sni=sni(service, mesh, tags),
        common_tls_context=_common(mesh, string_pb2.StringMatcher(exact=expected), alpn),
    )


def external_tls_context(ext: ExternalView) -> tls_pb2.UpstreamTlsContext:
    """TLS originated to an ExternalService: SNI ``serverName`` (else the host name), the server's
    certificate verified against its ``caCert`` and, unless ``skipHostnameVerification``, carrying
    the SNI (or host) as a DNS SAN. An IP address with no ``serverName`` sends no SNI and gets no name
    check (the CA still is). Without ``caCert`` nothing is verified (as configured)."""
    t = ext.tls or ExternalTls()
    name = t.server_name or (None if _is_ip(ext.host) else ext.host)
    ctx = tls_pb2.UpstreamTlsContext(allow_renegotiation=t.allow_renegotiation)
    if name:
        ctx.sni = name
    alpn = {"http": ["http/1.1"], "http2": ["h2"], "grpc": ["h2"]}.get(ext.protocol, [])
    ctx.common_tls_context.alpn_protocols.extend(alpn)
    if t.ca_pem is not None or t.ca_file is not None:
        vc = common_pb2.CertificateValidationContext(
            trusted_ca=base_pb2.DataSource(inline_string=t.ca_pem)
            if t.ca_pem is not None
            else base_pb2.DataSource(filename=t.ca_file or "")
        )
        if name and not t.skip_hostname_verification:
            vc.match_typed_subject_alt_names.append(
                common_pb2.SubjectAltNameMatcher(
                    san_type=common_pb2.SubjectAltNameMatcher.DNS, matcher=string_pb2.StringMatcher(exact=name)
                )
            )
        ctx.common_tls_context.validation_context.CopyFrom(vc)
    return ctx


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def transport_socket(context: tls_pb2.DownstreamTlsContext | tls_pb2.UpstreamTlsContext) -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=pack(context))


def tls_inspector() -> listener_components_pb2.ListenerFilter:
    """The TLS inspector listener filter (sets ``transport_protocol`` to ``tls`` or ``raw_buffer``)."""
    return listener_components_pb2.ListenerFilter(
        name=TLS_INSPECTOR, typed_config=pack(tls_inspector_pb2.TlsInspector())
    )
