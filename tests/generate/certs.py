"""Test certificates for mTLS: a mesh CA and proxy certificates with SPIFFE/Kuma URI SANs.

``make_ca`` and ``issue`` build fresh ones with ``cryptography`` (for traffic tests). Golden tests
use ``fixed_identity()``: PEM files under ``testdata/certs/`` (valid for a century) so goldens are
stable; ``python -m tests.generate.certs`` rewrites them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from atoll.topology import Identity

CERTS = Path(__file__).parent / "testdata" / "certs"


@dataclass(frozen=True)
class Ca:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()


def make_ca(name: str = "default", years: int = 1, start: datetime.datetime | None = None) -> Ca:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, name), x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")]
    )
    now = start or datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365 * years + 30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Ca(cert, key)


def issue(
    ca: Ca,
    mesh: str,
    service: str | list[str],
    tags: dict[str, str] | None = None,
    years: int = 1,
    start: datetime.datetime | None = None,
) -> Identity:
    """A proxy certificate of ``service`` (or several) in ``mesh``: URI SANs ``spiffe://<mesh>/<service>``
    and ``kuma://<tag>/<value>`` per tag (as Kuma's data plane certificates)."""
    key = ec.generate_private_key(ec.SECP256R1())
    uris = [
        x509.UniformResourceIdentifier(f"spiffe://{mesh}/{s}")
        for s in ([service] if isinstance(service, str) else service)
    ]
    uris += [x509.UniformResourceIdentifier(f"kuma://{k}/{v}") for k, v in sorted((tags or {}).items())]
    now = start or datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, mesh)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365 * years))
        .add_extension(x509.SubjectAlternativeName(uris), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return Identity(cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem=key_pem, ca_pem=ca.pem)


def fixed_identity() -> Identity:
    """The stable test identity (``spiffe://default/web``) used by golden files."""
    return Identity(
        cert_pem=(CERTS / "proxy.pem").read_text(),
        key_pem=(CERTS / "proxy-key.pem").read_text(),
        ca_pem=(CERTS / "ca.pem").read_text(),
    )


def _write_fixed() -> None:
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    ca = make_ca("default", years=100, start=start)
    ident = issue(ca, "default", "web", {"kuma.io/zone": "zone-1"}, years=100, start=start)
    CERTS.mkdir(parents=True, exist_ok=True)
    (CERTS / "ca.pem").write_text(ident.ca_pem)
    (CERTS / "proxy.pem").write_text(ident.cert_pem)
    (CERTS / "proxy-key.pem").write_text(ident.key_pem)


if __name__ == "__main__":
    _write_fixed()
