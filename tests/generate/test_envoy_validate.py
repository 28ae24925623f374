"""Every generated config passes the real Envoy 1.40's ``--mode validate`` (and a broken one does not)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from atoll.topology import proxy_view
from atoll.xds.generate import envoy_bootstrap, grpc_proxyless_resources, sidecar_resources
from tests.generate.envoy_validate import assert_valid, envoy_validate, static_bootstrap
from tests.generate.golden import load_mesh_view
from tests.generate.test_golden import PROXIES

pytestmark = pytest.mark.envoy


@pytest.mark.parametrize("name", PROXIES)
def test_sidecar_config_passes_envoy_validate(name: str, tmp_path: Path) -> None:
    resources = sidecar_resources(proxy_view(load_mesh_view(), name))
    assert_valid(static_bootstrap(resources), tmp_path)


def test_proxyless_config_passes_envoy_validate(tmp_path: Path) -> None:
    resources = grpc_proxyless_resources(proxy_view(load_mesh_view(), "grpc-client"))
    assert_valid(static_bootstrap(resources), tmp_path)


def test_validation_catches_a_broken_config(tmp_path: Path) -> None:
    """The check is real: a cluster referencing a bad port is rejected."""
    boot = static_bootstrap(sidecar_resources(proxy_view(load_mesh_view(), "web-1")))
    boot["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"][
        "address"
    ]["socket_address"]["port_value"] = 70000
    done = envoy_validate(boot, tmp_path)
    assert done.returncode != 0
    assert "port_value" in done.stdout + done.stderr


@pytest.mark.parametrize("ads", ["sotw", "delta"])
def test_bootstrap_passes_envoy_validate(ads: str, tmp_path: Path) -> None:
    boot = envoy_bootstrap(
        node_id="default.web-1",
        node_cluster="web",
        xds_host="127.0.0.1",
        xds_port=5678,
        ads="sotw" if ads == "sotw" else "delta",
        admin_port=9901,
        metadata={"mesh": "default"},
        token="a.b.c",
    )
    assert_valid(boot, tmp_path)


def test_bootstrap_with_admin_on_a_unix_socket_passes_envoy_validate(tmp_path: Path) -> None:
    boot = envoy_bootstrap(
        node_id="default.web-1",
        node_cluster="web",
        xds_host="127.0.0.1",
        xds_port=5678,
        ads="delta",
        admin_port=9901,
        admin_pipe=str(tmp_path / "kuma-envoy-admin.sock"),
    )
    assert_valid(boot, tmp_path)


def test_bootstrap_with_tls_and_dns_name_passes_envoy_validate(tmp_path: Path) -> None:
    boot = envoy_bootstrap(
        node_id="default.web-1",
        node_cluster="web",
        xds_host="localhost",
        xds_port=5678,
        ads="delta",
        admin_port=9901,
        xds_tls_ca_pem=_self_signed_ca_pem(),
    )
    assert_valid(boot, tmp_path)


def _self_signed_ca_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "atoll test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()
