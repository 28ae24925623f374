"""Mesh PKI: builtin CAs, workload identities, dataplane and zone tokens (pure: no sockets, no store).

``certificates`` makes CA keys and certificates, issues workload certificates
(``WorkloadCertificate``: EC P-256, SPIFFE and ``kuma://`` URI SANs) and verifies chains;
``jwt_tokens`` issues and verifies RS256 JWTs for proxies and zones. Callers pass the time (``now``)
explicitly; the store-backed managers that keep CAs and signing keys as Secrets live in
``atoll.security`` (``mesh_ca``, ``token_service``). Their errors, ``CertificateError`` and
``InvalidToken``, are defined in ``atoll.errors`` and re-exported here.
"""

from atoll.errors import CertificateError, InvalidToken
from atoll.pki.certificates import (
    CaBundle,
    WorkloadCertificate,
    bundle_trusts_self_signed,
    certificate_facts,
    certificate_uris,
    check_ca,
    generate_ca,
    generate_ca_key,
    generate_self_signed,
    host_names,
    identity_uris,
    issue_identity,
    rsa_key_bits,
    self_sign_ca,
    spiffe_id,
    tag_uri,
    verify_chain,
)
from atoll.pki.jwt_tokens import (
    PROXY_TYPES,
    ZONE_SCOPES,
    DataplaneClaims,
    ProxyType,
    SigningKey,
    ZoneClaims,
    ZoneScope,
    claims_match,
    generate_signing_key,
    issue_dataplane_token,
    issue_zone_token,
    token_id,
    unverified_claims,
    unverified_mesh,
    verify_dataplane_token,
    verify_zone_token,
)

__all__ = [
    "PROXY_TYPES",
    "ZONE_SCOPES",
    "CaBundle",
    "CertificateError",
    "DataplaneClaims",
    "InvalidToken",
    "ProxyType",
    "SigningKey",
    "WorkloadCertificate",
    "ZoneClaims",
    "ZoneScope",
    "bundle_trusts_self_signed",
    "certificate_facts",
    "certificate_uris",
    "check_ca",
    "claims_match",
    "generate_ca",
    "generate_ca_key",
    "generate_self_signed",
    "generate_signing_key",
    "host_names",
    "identity_uris",
    "issue_dataplane_token",
    "issue_identity",
    "issue_zone_token",
    "rsa_key_bits",
    "self_sign_ca",
    "spiffe_id",
    "tag_uri",
    "token_id",
    "unverified_claims",
    "unverified_mesh",
    "verify_chain",
    "verify_dataplane_token",
    "verify_zone_token",
]
