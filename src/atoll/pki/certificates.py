"""Certificate authorities and workload identities: X.509 from values in, PEM out (pure, no I/O).

A mesh's builtin CA is an RSA key (``RSAbits`` of the mesh's ``conf.caCert``, 2048 by default) and a
self-signed certificate: CA:true, keyCertSign + cRLSign, subject ``O=<mesh>, CN=<mesh> builtin CA``
and URI SAN ``spiffe://<mesh>``. The key and the certificate are made by two functions
(``generate_ca_key``, ``self_sign_ca``) so that a store-backed manager can persist the key first and
let whoever reads it back sign the certificate (two racing creators end with one CA).

A workload identity (``issue_identity``) is a leaf certificate signed by that CA for an **EC P-256**
key: ECDSA key generation takes well under a millisecond where RSA-2048 takes tens to hundreds (and
its signatures verify as fast), which matters when a control plane issues one certificate per proxy
at start and again at every rotation; Envoy (BoringSSL) handles ECDSA leaves under an RSA CA. Its
subject is empty and its (critical) SANs are the URIs Kuma uses, so that permissions can match them:
``spiffe://<mesh>/<service>`` for each ``kuma.io/service`` value and ``kuma://<tag>/<value>`` for every
tag value (``kuma://kuma.io/zone/east``). Extended key usage: serverAuth + clientAuth.

``verify_chain`` checks that a leaf was signed by a CA (signature, issuer name, validity window at
``now``) and raises ``CertificateError`` naming what failed; ``generate_self_signed`` makes the
serving pair for the REST API's ``--tls-generate``. ``bundle_trusts_self_signed`` tells whether a PEM
bundle a client trusts verifies a self-signed serving certificate (``None`` when it is not self-signed,
so a chain could exist that this cannot see).

Parsed CA material is cached by PEM text (``functools.lru_cache``), so issuing many identities from
one CA parses its key once.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from atoll.errors import CertificateError

SERVICE_TAG = "kuma.io/service"
DEFAULT_CA_BITS = 2048


@dataclass(frozen=True, slots=True)
class CaBundle:
    """A CA: its certificate and private key, PEM text."""

    cert_pem: str
    key_pem: str


@dataclass(frozen=True, slots=True)
class WorkloadCertificate:
    """A workload certificate, its private key (PEM), and the facts read back from it.

    What ``issue_identity`` returns; the proxies layer hands its PEMs on to the generators as an
    ``atoll.topology.Identity`` (certificate, key and the CA that verifies peers)."""

    cert_pem: str
    key_pem: str
    serial: int
    not_before: datetime
    not_after: datetime
    uris: tuple[str, ...]


# --- names ---------------------------------------------------------------------------------------


def spiffe_id(mesh: str, service: str | None = None) -> str:
    """``spiffe://<mesh>`` (the CA) or ``spiffe://<mesh>/<service>`` (a workload)."""
    return f"spiffe://{mesh}" if service is None else f"spiffe://{mesh}/{service}"


def tag_uri(tag: str, value: str) -> str:
    """``kuma://<tag>/<value>``, the URI SAN Kuma puts in identities for each tag value."""
    return f"kuma://{tag}/{value}"


def identity_uris(mesh: str, services: Iterable[str], tags: Mapping[str, Iterable[str]]) -> list[str]:
    """The URI SANs of an identity, deterministic order: SPIFFE IDs of services, then tag URIs by tag.

    ``kuma.io/service`` values in ``tags`` also get their ``kuma://`` URI (as in Kuma)."""
    out: list[str] = []
    for s in sorted(set(services)):
        out.append(spiffe_id(mesh, s))
    for tag in sorted(tags):
        for value in sorted(set(tags[tag])):
            out.append(tag_uri(tag, value))
    return out


# --- CA ------------------------------------------------------------------------------------------


def generate_ca_key(rsa_bits: int = DEFAULT_CA_BITS) -> str:
    """A new RSA private key for a CA, PKCS#8 PEM."""
    if rsa_bits < 2048:
        raise ValueError(f"rsa_bits must be at least 2048, got {rsa_bits}")
    key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    return _key_pem(key)


def self_sign_ca(key_pem: str, mesh: str, *, valid_for: timedelta, now: datetime) -> str:
    """The self-signed CA certificate of ``key_pem`` for ``mesh``, valid from ``now`` for ``valid_for``."""
    key = _load_key(key_pem)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, mesh),
            x509.NameAttribute(NameOID.COMMON_NAME, _cn(f"{mesh} builtin CA")),
        ]
    )
    start = _second(now)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + valid_for)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id(mesh))]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def generate_ca(mesh: str, *, rsa_bits: int = DEFAULT_CA_BITS, valid_for: timedelta, now: datetime) -> CaBundle:
    """A new self-signed CA for ``mesh`` (see the module docstring for its shape)."""
    key_pem = generate_ca_key(rsa_bits)
    return CaBundle(self_sign_ca(key_pem, mesh, valid_for=valid_for, now=now), key_pem)


def check_ca(ca: CaBundle) -> None:
    """``CertificateError`` unless ``ca`` parses, is a CA certificate and its key matches it."""
    cert, key = _load_ca(ca.cert_pem, ca.key_pem)
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise CertificateError("the CA certificate has no basicConstraints extension") from None
    if not bc.ca:
        raise CertificateError("the CA certificate is not a CA (basicConstraints CA:false)")
    if _public_der(cert.public_key()) != _public_der(key.public_key()):
        raise CertificateError("the CA key does not match the CA certificate")


# --- identities ----------------------------------------------------------------------------------


def issue_identity(
    ca: CaBundle,
    *,
    mesh: str,
    services: Sequence[str],
    tags: Mapping[str, Sequence[str]],
    valid_for: timedelta,
    now: datetime,
) -> WorkloadCertificate:
    """A leaf certificate with a fresh EC P-256 key for a workload of ``mesh`` (module docstring)."""
    if not services:
        raise ValueError("an identity needs at least one service")
    ca_cert, ca_key = _load_ca(ca.cert_pem, ca.key_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    uris = identity_uris(mesh, services, tags)
    start = _second(now)
    public = key.public_key()
    serial = x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(start + valid_for)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return WorkloadCertificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        key_pem=_key_pem(key),
        serial=serial,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        uris=tuple(uris),
    )


def certificate_uris(cert_pem: str) -> list[str]:
    """The URI SANs of a certificate, as stored."""
    cert = _load_cert(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


def verify_chain(cert_pem: str, ca_pem: str, *, now: datetime | None = None) -> None:
    """``CertificateError`` unless ``cert_pem`` was issued by ``ca_pem`` (and, given ``now``, both are valid then)."""
    cert = _load_cert(cert_pem)
    ca = _load_cert(ca_pem)
    if cert.issuer != ca.subject:
        raise CertificateError(
            f"issuer {cert.issuer.rfc4514_string()!r} is not the CA's subject {ca.subject.rfc4514_string()!r}"
        )
    try:
        cert.verify_directly_issued_by(ca)
    except InvalidSignature:
        raise CertificateError("the signature does not verify with the CA's key (tampered or another CA)") from None
    except (ValueError, TypeError) as e:
        raise CertificateError(f"not issued by the CA: {e}") from None
    if now is not None:
        for what, c in (("certificate", cert), ("CA certificate", ca)):
            if now < c.not_valid_before_utc:
                raise CertificateError(f"the {what} is not valid before {c.not_valid_before_utc.isoformat()}")
            if now > c.not_valid_after_utc:
                raise CertificateError(f"the {what} expired at {c.not_valid_after_utc.isoformat()}")


def certificate_facts(cert_pem: str) -> tuple[int, datetime, datetime]:
    """(serial, not_before, not_after) of a certificate."""
    cert = _load_cert(cert_pem)
    return cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc


def rsa_key_bits(pem: str) -> int:
    """The size of an RSA key, from a certificate or a private key PEM (``CertificateError`` if not RSA)."""
    if "CERTIFICATE" in pem:
        public = _load_cert(pem).public_key()
    else:
        public = _load_key(pem).public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise CertificateError("not an RSA key")
    return public.key_size


# --- serving certificate for the REST API ----------------------------------------------------------


def host_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """The SAN entries of a serving certificate for ``hosts``: IP addresses as such, the rest as DNS names."""
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return names


def generate_self_signed(hosts: Sequence[str], *, valid_for: timedelta, now: datetime) -> tuple[str, str]:
    """A self-signed serving certificate (EC P-256) for ``hosts`` (DNS names or IP addresses).

    Returns (cert PEM, key PEM). The certificate is its own CA (CA:true, pathlen 0), so clients can
    trust exactly it (``--cacert``/``verify=<file>``)."""
    if not hosts:
        raise ValueError("a serving certificate needs at least one host")
    key = ec.generate_private_key(ec.SECP256R1())
    names = host_names(hosts)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _cn(hosts[0]))])
    start = _second(now)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + valid_for)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii"), _key_pem(key)


# --- helpers -------------------------------------------------------------------------------------

_SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _second(t: datetime) -> datetime:
    """Certificates keep whole seconds; drop the rest so reported times equal the stored ones."""
    return t.replace(microsecond=0)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """digitalSignature, plus keyCertSign and cRLSign for a CA, keyAgreement (ECDH) for a workload."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _cn(text: str) -> str:
    return text if len(text) <= 64 else text[:64]


def _key_pem(key: _SigningKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def _public_der(key: object) -> bytes:
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@functools.lru_cache(maxsize=256)
def bundle_trusts_self_signed(bundle_pem: str, cert_pem: str) -> bool | None:
    """Whether a client trusting the certificates of ``bundle_pem`` accepts the serving certificate
    ``cert_pem``, told only when that is self-signed (``None`` otherwise, or when either is unreadable).
    Names and validity are not checked: only that the bundle holds the certificate or its key's CA."""
    try:
        cert = _load_cert(cert_pem)
        bundle = x509.load_pem_x509_certificates(bundle_pem.encode("ascii"))
    except (CertificateError, ValueError, UnicodeEncodeError):
        return None
    if cert.issuer != cert.subject:
        return None
    for ca in bundle:
        if ca == cert:
            return True
        if ca.subject == cert.issuer:
            try:
                cert.verify_directly_issued_by(ca)
                return True
            except (InvalidSignature, ValueError, TypeError):
                continue
    return False


def _load_cert(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as e:
        raise CertificateError(f"not a PEM certificate: {e}") from None


@functools.lru_cache(maxsize=64)
def _load_key(pem: str) -> _SigningKey:
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError) as e:
        raise CertificateError(f"not a PEM private key: {e}") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CertificateError(f"unsupported key type {type(key).__name__}: RSA or EC keys only")
    return key


def _load_ca(cert_pem: str, key_pem: str) -> tuple[x509.Certificate, _SigningKey]:
    return _load_cert(cert_pem), _load_key(key_pem)
