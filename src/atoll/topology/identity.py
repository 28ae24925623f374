"""``Identity``: the certificate material a proxy needs when its mesh has mTLS (pure data).

The control plane gets it from the mesh CA (``atoll.pki``) and passes it to
``sidecar_resources(view, identity)``; the generators deliver it to Envoy as SDS secrets. The
certificate is expected to carry the proxy's identities as URI SANs: ``spiffe://<mesh>/<service>``
per service it serves and ``kuma://<tag>/<value>`` per inbound tag (what permissions match on).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Identity"]


@dataclass(frozen=True, slots=True)
class Identity:
    """PEM texts: the proxy's certificate (chain), its private key and the mesh CA certificate(s)."""

    cert_pem: str
    key_pem: str
    ca_pem: str

    def __repr__(self) -> str:  # never print the private key
        return f"Identity(cert_pem=<{len(self.cert_pem)} chars>, key_pem=<hidden>, ca_pem=<{len(self.ca_pem)} chars>)"
