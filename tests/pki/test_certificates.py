"""Builtin CA and workload identities: shape of the certificates, SANs, validity, chain checks,
tampering, and how fast identities are issued."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from atoll.pki import (
    CaBundle,
    CertificateError,
    certificate_uris,
    check_ca,
    generate_ca,
    generate_ca_key,
    generate_self_signed,
    issue_identity,
    rsa_key_bits,
    self_sign_ca,
    verify_chain,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def ca() -> CaBundle:
    return generate_ca("default", valid_for=timedelta(days=3650), now=NOW)


def cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def test_ca_is_a_self_signed_ca_for_the_mesh(ca: CaBundle) -> None:
    c = cert(ca.cert_pem)
    assert c.subject == c.issuer
    bc = c.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = c.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    assert certificate_uris(ca.cert_pem) == ["spiffe://default"]
    assert c.not_valid_before_utc == NOW.replace(microsecond=0)
    assert c.not_valid_after_utc - c.not_valid_before_utc == timedelta(days=3650)
    assert rsa_key_bits(ca.cert_pem) == 2048 == rsa_key_bits(ca.key_pem)
    check_ca(ca)
    verify_chain(ca.cert_pem, ca.cert_pem, now=NOW)


def test_rsa_bits_are_taken_from_the_argument() -> None:
    big = generate_ca("m", rsa_bits=3072, valid_for=DAY, now=NOW)
    assert rsa_key_bits(big.cert_pem) == 3072
    with pytest.raises(ValueError, match="at least 2048"):
        generate_ca_key(1024)


def test_a_key_that_does_not_match_the_certificate_is_refused(ca: CaBundle) -> None:
    other = generate_ca("default", valid_for=DAY, now=NOW)
    with pytest.raises(CertificateError, match="does not match"):
        check_ca(CaBundle(ca.cert_pem, other.key_pem))
    # A certificate self-signed again from the same key is the same CA key-wise.
    check_ca(CaBundle(self_sign_ca(ca.key_pem, "default", valid_for=DAY, now=NOW), ca.key_pem))


def test_identity_has_spiffe_and_tag_uris_and_both_usages(ca: CaBundle) -> None:
    ident = issue_identity(
        ca,
        mesh="default",
        services=["web", "web-admin"],
        tags={"kuma.io/service": ["web", "web-admin"], "kuma.io/zone": ["east"], "version": ["v1", "v2"]},
        valid_for=DAY,
        now=NOW,
    )
    c = cert(ident.cert_pem)
    assert certificate_uris(ident.cert_pem) == [
        "spiffe://default/web",
        "spiffe://default/web-admin",
        "kuma://kuma.io/service/web",
        "kuma://kuma.io/service/web-admin",
        "kuma://kuma.io/zone/east",
        "kuma://version/v1",
        "kuma://version/v2",
    ]
    assert list(ident.uris) == certificate_uris(ident.cert_pem)
    assert c.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical  # empty subject
    eku = c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(c.public_key(), ec.EllipticCurvePublicKey)
    assert c.serial_number == ident.serial
    assert (ident.not_before, ident.not_after) == (NOW.replace(microsecond=0), NOW.replace(microsecond=0) + DAY)
    assert c.issuer == cert(ca.cert_pem).subject
    verify_chain(ident.cert_pem, ca.cert_pem, now=NOW + timedelta(hours=1))


def test_identities_differ_in_key_and_serial(ca: CaBundle) -> None:
    a, b = (issue_identity(ca, mesh="default", services=["web"], tags={}, valid_for=DAY, now=NOW) for _ in range(2))
    assert a.serial != b.serial and a.key_pem != b.key_pem


def test_identity_validity_is_checked(ca: CaBundle) -> None:
    ident = issue_identity(ca, mesh="default", services=["web"], tags={}, valid_for=DAY, now=NOW)
    with pytest.raises(CertificateError, match="expired"):
        verify_chain(ident.cert_pem, ca.cert_pem, now=NOW + 2 * DAY)
    with pytest.raises(CertificateError, match="not valid before"):
        verify_chain(ident.cert_pem, ca.cert_pem, now=NOW - DAY)


def test_identity_of_another_ca_is_rejected(ca: CaBundle) -> None:
    other = generate_ca("default", valid_for=DAY, now=NOW)  # same subject, another key
    ident = issue_identity(other, mesh="default", services=["web"], tags={}, valid_for=DAY, now=NOW)
    with pytest.raises(CertificateError, match="signature does not verify"):
        verify_chain(ident.cert_pem, ca.cert_pem)
    stranger = generate_ca("other", valid_for=DAY, now=NOW)
    with pytest.raises(CertificateError, match="is not the CA's subject"):
        verify_chain(ident.cert_pem, stranger.cert_pem)


def test_tampered_certificate_is_rejected(ca: CaBundle) -> None:
    ident = issue_identity(ca, mesh="default", services=["web"], tags={}, valid_for=DAY, now=NOW)
    der = bytearray(cert(ident.cert_pem).public_bytes(serialization.Encoding.DER))
    # Change one letter of the SAN "spiffe://default/web" -> "spiffe://default/wex": the signed part changes.
    pos = der.find(b"spiffe://default/web")
    assert pos > 0
    der[pos + len("spiffe://default/we")] = ord("x")
    forged = x509.load_der_x509_certificate(bytes(der))
    assert "spiffe://default/wex" in certificate_uris(_pem(forged))
    with pytest.raises(CertificateError, match="tampered"):
        verify_chain(_pem(forged), ca.cert_pem)


def test_garbage_is_a_certificate_error(ca: CaBundle) -> None:
    with pytest.raises(CertificateError, match="not a PEM certificate"):
        verify_chain("not a cert", ca.cert_pem)
    with pytest.raises(CertificateError, match="not a PEM private key"):
        issue_identity(CaBundle(ca.cert_pem, "nope"), mesh="m", services=["a"], tags={}, valid_for=DAY, now=NOW)
    with pytest.raises(ValueError, match="at least one service"):
        issue_identity(ca, mesh="m", services=[], tags={}, valid_for=DAY, now=NOW)


def test_identities_are_fast(ca: CaBundle) -> None:
    n = 50
    start = time.perf_counter()
    for i in range(n):
        issue_identity(ca, mesh="default", services=[f"s{i}"], tags={"kuma.io/zone": ["z"]}, valid_for=DAY, now=NOW)
    per_identity = (time.perf_counter() - start) / n
    # EC P-256: ~0.5 ms each here; an RSA-2048 key alone takes ~40 ms. Generous bound for slow CI.
    assert per_identity < 0.02, f"{per_identity * 1000:.1f} ms per identity"


def test_self_signed_serving_pair_names_its_hosts() -> None:
    cert_pem, key_pem = generate_self_signed(["localhost", "127.0.0.1", "::1"], valid_for=DAY, now=NOW)
    c = cert(cert_pem)
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    verify_chain(cert_pem, cert_pem, now=NOW)
    assert "PRIVATE KEY" in key_pem


def _pem(c: x509.Certificate) -> str:
    return c.public_bytes(serialization.Encoding.PEM).decode()
