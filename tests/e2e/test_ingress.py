"""The zone ingress: its CP keeps ``availableServices`` current, and its Envoy passes TLS through by SNI
to the local instances without terminating it (the client sees the backend's own certificate)."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.conftest import AgentFactory
from tests.e2e.mesh import CpProcess
from tests.helpers import free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.envoy]


def self_signed(cn: str, directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    c, k = directory / f"{cn}.crt", directory / f"{cn}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return c, k


class TlsEcho:
    """A TLS server that answers each line with ``<name>:<line>``."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.port = free_port()
        cert, key = self_signed(name, directory)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                data = tls.recv(1024)
                tls.sendall(f"{self.name}:".encode() + data)
        except (ssl.SSLError, OSError):
            pass

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture
def zone_cp(tmp_path: Path) -> Iterator[CpProcess]:
    c = CpProcess(tmp_path, env={"ATOLL_MODE": "zone", "ATOLL_ZONE": "zone-1"}).start()
    try:
        c.put({"type": "Mesh", "name": "default"})
        yield c
    finally:
        c.stop()


def tls_call(port: int, sni: str) -> tuple[str, str]:
    """(peer certificate CN, answer) of one TLS exchange through the ingress."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=3) as raw,
        ctx.wrap_socket(raw, server_hostname=sni) as s,
    ):
        der = s.getpeercert(binary_form=True)
        assert der is not None
        cn = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        s.sendall(b"ping")
        return str(cn), s.recv(1024).decode()


def backend_dp(name: str, app_port: int) -> dict[str, Any]:
    return {
        "type": "Dataplane",
        "mesh": "default",
        "name": name,
        "networking": {
            "address": "127.0.0.1",
            "inbound": [
                {"port": free_port(), "servicePort": app_port, "tags": {"kuma.io/service": "backend", "version": "v1"}}
            ],
        },
    }


def available(cp: CpProcess) -> list[dict[str, Any]]:
    return list(cp.get("/zoneingresses/zi-1").get("availableServices") or [])


def test_ingress_offers_local_services_and_passes_tls_through(
    zone_cp: CpProcess, agents: AgentFactory, tmp_path: Path
) -> None:
    b1 = TlsEcho("backend-1", tmp_path)
    b2 = TlsEcho("backend-2", tmp_path)
    try:
        agents(zone_cp, backend_dp("backend-1", b1.port))
        port = free_port()
        agents(
            zone_cp,
            {
                "type": "ZoneIngress",
                "name": "zi-1",
                "networking": {
                    "address": "127.0.0.1",
                    "port": port,
                    "advertisedAddress": "127.0.0.1",
                    "advertisedPort": port,
                },
            },
            proxy_type="ingress",
        )
        want = {"tags": {"kuma.io/service": "backend", "version": "v1"}, "instances": 1, "mesh": "default"}
        wait_until(lambda: available(zone_cp) == [want], timeout=10, what="availableServices with backend x1")
        zi = zone_cp.get("/zoneingresses/zi-1")
        assert zi["zone"] == "zone-1" and zi["labels"]["atoll.io/managed"] == "dp"

        cn, answer = wait_until(lambda: tls_call(port, "backend{mesh=default}"), timeout=10, what="TLS via ingress")
        assert (cn, answer) == ("backend-1", "backend-1:ping"), "the ingress must not terminate TLS"

        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            tls_call(port, "unknown{mesh=default}")

        second = agents(zone_cp, backend_dp("backend-2", b2.port))
        wait_until(lambda: available(zone_cp) == [{**want, "instances": 2}], timeout=10, what="instances 2")
        wait_until(
            lambda: {tls_call(port, "backend{mesh=default}")[0] for _ in range(10)} == {"backend-1", "backend-2"},
            timeout=10,
            what="both instances behind the ingress",
        )
        second.stop()
        wait_until(lambda: available(zone_cp) == [want], timeout=10, what="instances back to 1")
    finally:
        b1.stop()
        b2.stop()
