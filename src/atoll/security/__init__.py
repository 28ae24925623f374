"""Mesh security services over a store: CAs, token signing keys and revocations, proxy and admin checks.

- ``CaManager`` keeps each mesh's builtin CA as Secrets and issues workload identities (``mesh_ca``).
- ``TokenIssuer`` / ``TokenVerifier`` sign and check dataplane and zone tokens with rotating keys
  kept as Secrets / GlobalSecrets; ``proxy_authenticator("token"|"none", ...)`` is what the proxy
  lifecycle asks (``token_service``).
- ``TokenEndpoints`` validates the REST token requests (``endpoints``).
- ``AdminAuth``, ``ensure_admin_token``, ``ensure_tls_files``: the REST API's admin check and the
  files it relies on (``admin``).

The pure cryptography (X.509, JWT) is in ``atoll.pki``; this package adds the store and the clock.
"""

from atoll.errors import Forbidden, Unauthenticated
from atoll.security.admin import AdminAuth, ensure_admin_token, ensure_tls_files, read_admin_token
from atoll.security.endpoints import TokenEndpoints
from atoll.security.mesh_ca import CaManager, ca_cert_secret, ca_key_secret, dataplane_tag_set
from atoll.security.token_service import (
    TOKEN_HEADER,
    KeyRing,
    NoAuth,
    ProxyAuthenticator,
    RevocationList,
    TokenIssuer,
    TokenVerifier,
    dataplane_key_prefix,
    dataplane_revocations,
    proxy_authenticator,
)

__all__ = [
    "TOKEN_HEADER",
    "AdminAuth",
    "CaManager",
    "Forbidden",
    "KeyRing",
    "NoAuth",
    "ProxyAuthenticator",
    "RevocationList",
    "TokenEndpoints",
    "TokenIssuer",
    "TokenVerifier",
    "Unauthenticated",
    "ca_cert_secret",
    "ca_key_secret",
    "dataplane_key_prefix",
    "dataplane_revocations",
    "dataplane_tag_set",
    "ensure_admin_token",
    "ensure_tls_files",
    "proxy_authenticator",
    "read_admin_token",
]
