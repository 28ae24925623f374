"""A real control plane process serving its REST API over TLS with a generated certificate, with
loopback admin turned off: reached with the generated cert as CA, admin token from the data dir,
and the real ``atoll token`` CLI issuing and revoking tokens through it."""

from __future__ import annotations

import os
import signal
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.helpers import ATOLL, REPO, free_port, stop_process, wait_until


@pytest.fixture
def cp(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int, Path, Path]]:
    api, diag, data, log = free_port(), free_port(), tmp_path / "data", tmp_path / "cp.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")},
        "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "ATOLL_API_PORT": str(api),
        "ATOLL_DIAGNOSTICS_PORT": str(diag),
        "ATOLL_XDS_PORT": str(free_port()),
        "ATOLL_DATA_DIR": str(data),
        "ATOLL_STORE": "memory",
        "ATOLL_TLS_GENERATE": "true",
        "ATOLL_LOOPBACK_ADMIN": "false",
        "ATOLL_SHUTDOWN_TIMEOUT": "5",
        "ATOLL_SKIP_DEFAULT_MESH": "true",  # the test creates mesh default itself
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "atoll.cp"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:

        def ready() -> bool:
            assert proc.poll() is None, f"control plane exited {proc.returncode}: {log.read_text()}"
            return httpx.get(f"http://127.0.0.1:{diag}/ready", timeout=2).status_code == 200

        wait_until(ready, timeout=30, what="control plane /ready")
        yield proc, api, diag, data, log
    finally:
        stop_process(proc)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")}
    return subprocess.run([*ATOLL, *args], env={**base, **env}, capture_output=True, text=True, timeout=60, check=False)


def test_tls_api_with_generated_certificate_and_admin_token(
    cp: tuple[subprocess.Popen[bytes], int, int, Path, Path], tmp_path: Path
) -> None:
    proc, port, _, data, log = cp
    cert = data / "tls" / "api-cert.pem"
    token_file = data / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    admin_token = token_file.read_text().strip()
    assert admin_token not in log.read_text()  # the token is never logged
    trust = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{port}"

    with httpx.Client(base_url=url, verify=trust) as c:
        assert c.get("/").json()["product"] == "Atoll"
        r = c.put("/meshes/default", json={"type": "Mesh", "name": "default"})
        assert r.status_code == 401 and "Authorization: Bearer" in r.json()["details"]  # loopback_admin off
        r = c.put("/meshes/default", json={"type": "Mesh", "name": "default"}, headers=bearer(admin_token))
        assert r.status_code == 201, r.text
    with httpx.Client(base_url=f"https://localhost:{port}", verify=trust) as c:
        assert c.get("/meshes").json()["total"] == 1  # the certificate names localhost too
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(url + "/")  # not trusted by default
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=5)  # HTTPS only

    env = {"ATOLL_CACERT": str(cert), "ATOLL_TOKEN": admin_token, "ATOLL_CONFIG": str(tmp_path / "client.yaml")}
    out = cli(
        "--cp",
        url,
        "token",
        "dataplane",
        "--mesh",
        "default",
        "--name",
        "web-1",
        "--tag",
        "kuma.io/service=web",
        env=env,
    )
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["mesh"], claims["name"], claims["tags"]) == ("default", "web-1", {"kuma.io/service": ["web"]})

    out = cli("--cp", url, "token", "zone", "--zone", "east", "--scope", "ingress", "--valid-for", "1h", env=env)
    assert out.returncode == 0, out.stderr
    assert jwt.decode(out.stdout.strip(), options={"verify_signature": False})["scope"] == ["ingress"]

    (tmp_path / "web-1.token").write_text(token + "\n")
    out = cli(
        "--cp", url, "token", "revoke", "--kind", "dataplane", "--token-file", str(tmp_path / "web-1.token"), env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"revoked dataplane token {claims['jti']} in mesh default"

    out = cli("--cp", url, "token", "dataplane", "--mesh", "default", "--valid-for", "3x", env=env)
    assert out.returncode == 1
    assert 'validFor: invalid duration "3x"' in out.stderr

    no_token = {k: v for k, v in env.items() if k != "ATOLL_TOKEN"}
    out = cli("--cp", url, "token", "dataplane", "--mesh", "default", env=no_token)
    assert out.returncode == 1
    assert "Error: unauthenticated" in out.stderr

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
