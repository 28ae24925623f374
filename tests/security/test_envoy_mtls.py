"""Identities from ``atoll.pki`` work in real Envoy (BoringSSL): a listener serving the EC P-256
identity of ``backend`` and requiring a client certificate from the mesh CA with the SPIFFE ID of
``web`` lets ``web`` through to a real backend, and refuses another service's identity and an
identity from another CA. Also checked with Python's OpenSSL on both sides, without Envoy."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from atoll.pki import CaBundle, WorkloadCertificate, generate_ca, issue_identity
from tests.helpers import HttpBackend, free_port, static_cluster
from tests.xds_server.envoy_util import EnvoyProcess

NOW = datetime.now(UTC) - timedelta(minutes=1)
HOUR = timedelta(hours=1)
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


@pytest.fixture(scope="module")
def ca() -> CaBundle:
    return generate_ca("default", valid_for=timedelta(days=1), now=NOW)


def identity(ca: CaBundle, service: str) -> WorkloadCertificate:
    return issue_identity(
        ca, mesh="default", services=[service], tags={"kuma.io/zone": ["east"]}, valid_for=HOUR, now=NOW
    )


def client_context(ca: CaBundle, ident: WorkloadCertificate, tmp: Path) -> ssl.SSLContext:
    (tmp / "c.pem").write_text(ident.cert_pem)
    (tmp / "k.pem").write_text(ident.key_pem)
    ctx = ssl.create_default_context(cadata=ca.cert_pem)
    ctx.check_hostname = False  # identities carry URI SANs only; Envoy checks them on its side
    ctx.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    return ctx


def bootstrap(ca: CaBundle, server: WorkloadCertificate, *, admin: int, listen: int, backend: int) -> dict[str, Any]:
    tls = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": True,
            "common_tls_context": {
                "tls_certificates": [
                    {
                        "certificate_chain": {"inline_string": server.cert_pem},
                        "private_key": {"inline_string": server.key_pem},
                    }
                ],
                "validation_context": {
                    "trusted_ca": {"inline_string": ca.cert_pem},
                    "match_typed_subject_alt_names": [
                        {"san_type": "URI", "matcher": {"exact": "spiffe://default/web"}}
                    ],
                },
            },
        },
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "inbound",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                    "filter_chains": [
                        {
                            "transport_socket": tls,
                            "filters": [
                                {
                                    "name": "envoy.filters.network.tcp_proxy",
                                    "typed_config": {
                                        "@type": TCP_PROXY,
                                        "stat_prefix": "inbound",
                                        "cluster": "backend",
                                    },
                                }
                            ],
                        }
                    ],
                }
            ],
            "clusters": [static_cluster("backend", backend)],
        },
    }


def get_over_tls(port: int, ctx: ssl.SSLContext) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := s.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def refused(port: int, ctx: ssl.SSLContext) -> bool:
    """The handshake fails, or (TLS 1.3: the client may finish first) the server closes without answering."""
    try:
        return get_over_tls(port, ctx) == ""
    except (ssl.SSLError, ConnectionError):
        return True


@pytest.fixture
def envoy(ca: CaBundle, tmp_path: Path) -> Iterator[tuple[int, HttpBackend]]:
    backend = HttpBackend("b1")
    listen = free_port()
    proc = EnvoyProcess(
        bootstrap(ca, identity(ca, "backend"), admin=free_port(), listen=listen, backend=backend.port),
        tmp_path / "envoy",
    )
    try:
        proc.start()
        proc.wait_ready()
        yield listen, backend
    finally:
        proc.stop()
        backend.stop()


@pytest.mark.envoy
def test_envoy_accepts_the_right_identity_and_refuses_others(
    envoy: tuple[int, HttpBackend], ca: CaBundle, tmp_path: Path
) -> None:
    port, backend = envoy
    answer = get_over_tls(port, client_context(ca, identity(ca, "web"), tmp_path))
    assert answer.startswith("HTTP/1.1 200") and answer.endswith("backend=b1"), answer
    assert backend.requests == 1

    for who, ident in (
        ("another service", identity(ca, "db")),
        ("another CA", identity(generate_ca("default", valid_for=HOUR, now=NOW), "web")),
    ):
        assert refused(port, client_context(ca, ident, tmp_path)), who
    assert backend.requests == 1


def test_mutual_tls_with_openssl_in_memory(ca: CaBundle, tmp_path: Path) -> None:
    server_id, client_id = identity(ca, "backend"), identity(ca, "web")
    (tmp_path / "s.pem").write_text(server_id.cert_pem)
    (tmp_path / "sk.pem").write_text(server_id.key_pem)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "s.pem", tmp_path / "sk.pem")
    server.load_verify_locations(cadata=ca.cert_pem)
    server.verify_mode = ssl.CERT_REQUIRED
    client = client_context(ca, client_id, tmp_path)
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_side=False)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(10):
        for name, obj in (("c", c), ("s", s)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    assert all(done.values())
    peer = s.getpeercert()
    assert peer is not None
    assert ("URI", "spiffe://default/web") in peer["subjectAltName"]
    assert ("URI", "kuma://kuma.io/zone/east") in peer["subjectAltName"]
