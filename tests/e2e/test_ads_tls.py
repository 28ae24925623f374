"""ADS over TLS with real Envoy: sidecars of an mTLS mesh get their config and SDS identities over a TLS
ADS stream verified with ``atoll dp run --ca-file``; an agent without the CA is told what is missing; an
Envoy trusting another CA never gets a byte of config."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.conftest import BackendFactory
from tests.e2e.mesh import Agent, CpProcess
from tests.e2e.test_security import mesh, permission, safe_get, serials, service_dp
from tests.helpers import free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.envoy]


@pytest.fixture
def tls_cp(tmp_path: Path) -> Iterator[CpProcess]:
    # 127.0.0.1 would default to plaintext: --xds-tls on forces TLS as a non-loopback bind would.
    c = CpProcess(tmp_path, env={"ATOLL_AUTH": "token", "ATOLL_XDS_TLS": "on"}).start()
    try:
        c.put(mesh(None))
        yield c
    finally:
        c.stop()


def stat(agent: Agent, name: str) -> int:
    for line in agent.admin("/stats").splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


def other_ca(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-the-cp")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_mtls_mesh_served_over_tls_ads(tls_cp: CpProcess, tmp_path: Path, backends: BackendFactory) -> None:
    cp = tls_cp
    ca_file = cp.data_dir / "xds-tls.crt"
    assert ca_file.is_file(), "the CP generated its ADS pair in the data dir"
    cp.put(mesh("STRICT"))
    cp.put(permission("allow-all", {"kind": "Mesh"}, "Allow"))
    app = backends("tls-ads")
    out = free_port()
    started: list[Agent] = []
    try:
        for doc in (
            service_dp("backend-1", "backend", app.port, "http"),
            service_dp("web", "web", free_port(), "http", {"backend": out}),
        ):
            token = cp.dataplane_token("default", doc["name"])
            agent = Agent(cp, tmp_path, doc, token=token, extra_args=["--ca-file", str(ca_file)])
            started.append(agent.start())
        backend, web = started
        wait_until(lambda: safe_get(out) == (200, "backend=tls-ads"), timeout=15, what="mTLS traffic")
        assert serials(backend), "the identity certificate came over SDS on the TLS stream"
        assert stat(web, "cluster.ads_cluster.ssl.handshake") >= 1, "ADS went over TLS"
        assert "ads_cluster" in web.admin("/config_dump?resource=static_clusters")
    finally:
        for a in started:
            a.stop()


def test_agent_without_the_ca_is_refused_with_the_reason(tls_cp: CpProcess, tmp_path: Path) -> None:
    doc = service_dp("no-ca", "web", free_port(), "http")
    agent = Agent(tls_cp, tmp_path, doc, token=tls_cp.dataplane_token("default", "no-ca"))
    agent.start(wait=False)
    assert agent.proc is not None
    wait_until(lambda: agent.proc is not None and agent.proc.poll() is not None, timeout=20, what="agent exits")
    assert "caCert" in agent.log() and "--ca-file" in agent.log()
    agent.stop()


def test_envoy_trusting_another_ca_gets_no_config(tls_cp: CpProcess, tmp_path: Path) -> None:
    wrong = other_ca(tmp_path / "wrong-ca.crt")
    doc = service_dp("wrong-ca", "web", free_port(), "http")
    token = tls_cp.dataplane_token("default", "wrong-ca")
    agent = Agent(tls_cp, tmp_path, doc, token=token, extra_args=["--ca-file", str(wrong)])
    try:
        agent.start(wait=False)

        def verify_failed() -> bool:
            try:
                return stat(agent, "cluster.ads_cluster.ssl.fail_verify_error") >= 1
            except OSError:
                return False  # Envoy's admin not up yet

        wait_until(verify_failed, timeout=20, what="Envoy refusing the CP's certificate")
        assert tls_cp.insight("default", "wrong-ca") == {}, "never connected"
    finally:
        agent.stop()
