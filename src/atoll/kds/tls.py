"""TLS material for global's KDS port and a zone's ADS port: load the configured pair or make a self-signed one.

``server_credentials(cert, key)`` reads a PEM pair. ``ensure_self_signed(dir)`` returns
``<dir>/kds-tls.crt`` and ``<dir>/kds-tls.key`` (``stem="xds-tls"``: ``xds-tls.crt``/``.key``, the ADS
pair), creating them the first time (ECDSA P-256, ten years, SANs ``localhost``, this host's name,
``127.0.0.1`` and ``::1`` unless ``hosts`` are given, CA:true so the certificate is its own trust root):
zones pass the KDS certificate as ``--global-ca-file``, proxies the ADS one as ``atoll dp run --ca-file``.
The key is written 0600.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from atoll.errors import ConfigError
from atoll.pki.certificates import host_names


def ensure_self_signed(directory: Path, hosts: list[str] | None = None, *, stem: str = "kds-tls") -> tuple[Path, Path]:
    """The self-signed pair ``<stem>.crt``/``<stem>.key`` in ``directory``, created if either is missing."""
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    names = hosts if hosts is not None else ["localhost", socket.gethostname(), "127.0.0.1", "::1"]
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"atoll-{stem}")])
    alt = host_names(dict.fromkeys(names))
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def server_credentials(cert: Path, key: Path, *, option: str = "kds_tls") -> grpc.ServerCredentials:
    """gRPC server credentials from a PEM pair; ``ConfigError`` naming the option (``<option>_cert``) if
    unreadable."""
    try:
        cert_pem = cert.read_bytes()
    except OSError as e:
        raise ConfigError(f"{option}_cert: cannot read {cert}: {e.strerror or e}") from None
    try:
        key_pem = key.read_bytes()
    except OSError as e:
        raise ConfigError(f"{option}_key: cannot read {key}: {e.strerror or e}") from None
    return grpc.ssl_server_credentials([(key_pem, cert_pem)])
