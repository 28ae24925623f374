"""``kuma-dp`` 2.14.3 over HTTPS to an Atoll CP whose ADS speaks TLS, in an mTLS mesh.

The CP serves its REST API and ADS with one certificate (``--tls-cert`` and ``--xds-tls-cert`` the same
pair), so the one file given to ``kuma-dp --ca-cert-file`` verifies both: kuma-dp checks the REST
API with it, sends it as ``caCert``, and Envoy's ADS cluster verifies the CP with it. Without
``--ca-cert-file`` kuma-dp sends no CA and the CP refuses the bootstrap, naming the field.
"""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from atoll.pki.certificates import generate_self_signed
from tests.compat.kuma_dp_process import KumaDp
from tests.e2e.mesh import CpProcess, call
from tests.e2e.multizone import allow_all, mtls_mesh
from tests.helpers import HttpBackend, free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.envoy]


class TlsCp(CpProcess):
    """A CP with REST over HTTPS; ``get``/``put``/``post`` verify it with ``ca``."""

    ca: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def call(self, method: str, path: str, body: object | None = None) -> Any:
        tls = ssl.create_default_context(cafile=str(self.ca))
        r = httpx.request(method, self.url + path, json=body, verify=tls, timeout=10)
        assert r.status_code in (200, 201), (r.status_code, r.text)
        return r.json()


@pytest.fixture
def tls_cp(tmp_path: Path) -> Iterator[TlsCp]:
    cert, key = generate_self_signed(
        ["127.0.0.1", "localhost"], valid_for=datetime.timedelta(days=1), now=datetime.datetime.now(datetime.UTC)
    )
    (tmp_path / "cp.crt").write_text(cert)
    (tmp_path / "cp.key").write_text(key)
    pair = {"CERT": str(tmp_path / "cp.crt"), "KEY": str(tmp_path / "cp.key")}
    env = {"ATOLL_AUTH": "token", "ATOLL_XDS_TLS": "on"}
    for prefix in ("ATOLL_TLS_", "ATOLL_XDS_TLS_"):
        env.update({prefix + k: v for k, v in pair.items()})
    cp = TlsCp(tmp_path, env=env)
    cp.ca = tmp_path / "cp.crt"
    cp.start()
    try:
        cp.call("PUT", "/meshes/default", mtls_mesh())
        cp.call("PUT", "/meshes/default/meshtrafficpermissions/allow-all", allow_all())
        yield cp
    finally:
        cp.stop()


def sidecar(name: str, service: str, app_port: int, outbound: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "type": "Dataplane",
        "mesh": "default",
        "name": name,
        "networking": {
            "address": "127.0.0.1",
            "inbound": [{"port": free_port(), "servicePort": app_port, "tags": {"kuma.io/service": service}}],
            "outbound": [{"port": p, "tags": {"kuma.io/service": s}} for s, p in (outbound or {}).items()],
        },
    }


def test_kuma_dp_over_https_with_tls_ads_in_an_mtls_mesh(tls_cp: TlsCp, tmp_path: Path) -> None:
    app, client_app = HttpBackend("web"), HttpBackend("client")
    out = free_port()
    ca = ["--ca-cert-file", str(tls_cp.ca)]
    started: list[KumaDp] = []
    try:
        for name, doc in (
            ("web", sidecar("web", "web", app.port)),
            ("client", sidecar("client", "client", client_app.port, {"web": out})),
        ):
            token = tls_cp.call("POST", "/tokens/dataplane", {"mesh": "default", "name": name})["token"]
            dp = KumaDp(tls_cp, tmp_path, doc, token=token, extra_args=ca)
            started.append(dp)
            dp.start()
        wait_until(lambda: call(out) == "backend=web", timeout=40, what="client -> web over mTLS")
        assert all("retrying" not in dp.log() for dp in started)
    finally:
        for dp in started:
            dp.stop()
        app.stop()
        client_app.stop()


def test_kuma_dp_without_the_ca_is_told_which_field_is_missing(tls_cp: TlsCp, tmp_path: Path) -> None:
    token = tls_cp.call("POST", "/tokens/dataplane", {"mesh": "default", "name": "web"})["token"]
    dp = KumaDp(tls_cp, tmp_path, sidecar("web", "web", free_port()), token=token, extra_args=["--skip-verify"])
    try:
        dp.start(wait=False)
        assert dp.proc is not None
        assert dp.proc.wait(60) != 0
        log = dp.log()
        assert "Invalid request" in log and "caCert" in log and "ADS speaks TLS" in log, log
    finally:
        dp.stop()


def test_generated_certificates_differ_so_kuma_dp_needs_both(tmp_path: Path) -> None:
    """``--tls-generate`` and a generated ADS pair are two self-signed certificates: kuma-dp given only
    the REST API's is refused at once, naming ``caCert`` (Envoy could never verify ADS); given a file
    holding both, it runs."""
    cp = TlsCp(tmp_path, env={"ATOLL_AUTH": "token", "ATOLL_XDS_TLS": "on", "ATOLL_TLS_GENERATE": "true"})
    cp.ca = cp.data_dir / "tls" / "api-cert.pem"
    cp.start()
    started: list[KumaDp] = []
    try:
        cp.call("PUT", "/meshes/default", {"type": "Mesh", "name": "default"})
        bundle = tmp_path / "rest-and-ads.pem"
        bundle.write_text(cp.ca.read_text() + (cp.data_dir / "xds-tls.crt").read_text())
        for name, ca, ok in (("rest-only", cp.ca, False), ("both", bundle, True)):
            token = cp.call("POST", "/tokens/dataplane", {"mesh": "default", "name": name})["token"]
            dp = KumaDp(
                cp, tmp_path, sidecar(name, name, free_port()), token=token, extra_args=["--ca-cert-file", str(ca)]
            )
            started.append(dp)
            dp.start(wait=ok)
            if not ok:
                assert dp.proc is not None
                assert dp.proc.wait(60) != 0
                log = dp.log()
                assert "Invalid request" in log and "caCert" in log and "holding both" in log, log
                assert log.count("trying to fetch bootstrap configuration") == 1, log
    finally:
        for dp in started:
            dp.stop()
        cp.stop()
