"""Admin token file, the REST API's TLS files, the CP's security options, and the CLI's tag parsing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from starlette.requests import Request

from atoll.cli.token import parse_tags
from atoll.cp.config import load_config
from atoll.errors import ConfigError, InvalidInput, Unauthenticated
from atoll.pki import certificate_facts, verify_chain
from atoll.security import AdminAuth, ensure_admin_token, ensure_tls_files


def test_admin_token_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "admin-token"
    token = ensure_admin_token(path)
    assert len(token) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == token + "\n"
    assert ensure_admin_token(path) == token  # kept across restarts
    assert ensure_admin_token(tmp_path / "other") != token


def test_an_operator_supplied_token_is_used(tmp_path: Path) -> None:
    path = tmp_path / "admin-token"
    path.write_text("  my-own-admin-token-1234\n")
    path.chmod(0o600)
    assert ensure_admin_token(path) == "my-own-admin-token-1234"


def test_unsafe_or_short_token_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "admin-token"
    path.write_text("x" * 40)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="accessible by other users"):
        ensure_admin_token(path)
    path.chmod(0o600)
    path.write_text("short")
    with pytest.raises(ConfigError, match="at least 16 characters"):
        ensure_admin_token(path)


def request(host: str, authorization: str | None = None) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (host, 1)})


def test_admin_auth() -> None:
    auth = AdminAuth("t" * 40, token_file=Path("/data/admin-token"))
    assert auth(request("127.0.0.1")) and auth(request("::1"))
    assert auth(request("10.0.0.1", "Bearer " + "t" * 40))
    assert auth(request("10.0.0.1", "bearer  " + "t" * 40))
    # a remote client is told what to send, never where the token file is (issue 14, item 11)
    with pytest.raises(Unauthenticated, match=r"send 'Authorization: Bearer <admin token>'") as remote:
        auth(request("10.0.0.1"))
    assert "/data/admin-token" not in str(remote.value)
    with pytest.raises(Unauthenticated, match="not this control plane's admin token") as remote:
        auth(request("10.0.0.1", "Bearer nope"))
    assert "/data/admin-token" not in str(remote.value)
    strict = AdminAuth("t" * 40, token_file=Path("/data/admin-token"), loopback_admin=False)
    # a loopback client (here: not an admin by address) is told where the file is
    with pytest.raises(Unauthenticated, match=r"it is in /data/admin-token"):
        strict(request("127.0.0.1"))
    assert strict(request("127.0.0.1", "Bearer " + "t" * 40))


def test_tls_files_are_generated_once(tmp_path: Path) -> None:
    cert, key = ensure_tls_files(tmp_path, "0.0.0.0")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    pem = cert.read_text()
    verify_chain(pem, pem)
    assert ensure_tls_files(tmp_path, "0.0.0.0") == (cert, key)
    assert cert.read_text() == pem
    _, before, after = certificate_facts(pem)
    assert (after - before).days == 365


def test_cp_security_options(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}
    c = load_config({}, home, None)
    assert (c.auth, c.loopback_admin, c.tls_generate, c.tls_cert, c.api_tls) == ("token", True, False, None, False)
    assert c.admin_token_path == c.data_dir / "admin-token"
    c = load_config(
        {"auth": "none", "loopback_admin": "false", "tls_generate": "true", "admin_token_file": str(tmp_path / "t")},
        home,
        None,
    )
    assert (c.auth, c.loopback_admin, c.tls_generate, c.api_tls) == ("none", False, True, True)
    assert c.admin_token_path == tmp_path / "t"
    assert load_config({}, {**home, "ATOLL_LOOPBACK_ADMIN": "FALSE"}, None).loopback_admin is False
    f = tmp_path / "cp.yaml"
    f.write_text("loopback-admin: false\ntls-generate: true\n")
    assert load_config({}, home, f).loopback_admin is False
    with pytest.raises(ConfigError, match=r'^auth: must be one of token, none, got "mtls"'):
        load_config({"auth": "mtls"}, home, None)
    with pytest.raises(ConfigError, match=r"^loopback_admin: must be one of true, false"):
        load_config({"loopback_admin": "yes"}, home, None)
    with pytest.raises(ConfigError, match=r"^tls_key: tls_cert and tls_key go together"):
        load_config({"tls_cert": str(f)}, home, None)
    with pytest.raises(ConfigError, match=r"^tls_cert: no such file"):
        load_config({"tls_cert": str(tmp_path / "nope"), "tls_key": str(f)}, home, None)
    with pytest.raises(ConfigError, match=r"^tls_generate: not with tls_cert"):
        load_config({"tls_cert": str(f), "tls_key": str(f), "tls_generate": "true"}, home, None)


def test_cli_tag_parsing() -> None:
    assert parse_tags(("kuma.io/service=web", "version=v1,v2", "version=v2")) == {
        "kuma.io/service": ["web"],
        "version": ["v1", "v2"],
    }
    with pytest.raises(InvalidInput) as info:
        parse_tags(("nope", "a="))
    assert [e.path for e in info.value.errors] == ["--tag", "--tag"]


def test_no_group_or_world_bits_even_with_a_loose_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        ensure_admin_token(tmp_path / "admin-token")
        _, key = ensure_tls_files(tmp_path, "127.0.0.1")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "admin-token").stat().st_mode) == 0o600
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
