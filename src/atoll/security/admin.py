"""Who is an admin of the REST API, and the files that make it so (admin token, TLS serving pair).

The admin token is a random secret (32 bytes, URL-safe base64) in ``<data_dir>/admin-token``,
written at first start with mode 0600 (``ensure_admin_token``; an existing file is kept, so an
operator may put their own token there, and a token file readable by others is refused).

``AdminAuth`` is the ``is_admin`` check of ``atoll.api.deps.ApiDependencies``: a client on a loopback
address is an admin when ``loopback_admin`` is on (the default: whoever can run commands on the CP's
host can read the token file anyway); any other client must send ``Authorization: Bearer <admin
token>``. A missing or wrong token raises ``Unauthenticated`` (HTTP 401 with a message that says what
to send; the token file's path only to a loopback client, who could read it anyway). Tokens are
compared in constant time.

``ensure_tls_files`` makes the self-signed serving certificate of ``--tls-generate``
(``<data_dir>/tls/api-cert.pem`` and ``api-key.pem``, the key 0600), valid for ``localhost``, the
loopback addresses, the host name and the API's listen address; clients trust it with
``--cacert <data_dir>/tls/api-cert.pem`` (httpx: ``verify=<that file>``).
"""

from __future__ import annotations

import hmac
import os
import secrets
import socket
import stat
from datetime import timedelta
from pathlib import Path

from starlette.requests import Request

from atoll.addresses import is_loopback_host
from atoll.errors import ConfigError, Unauthenticated
from atoll.pki import generate_self_signed
from atoll.security.secrets import Clock, utc_now

ADMIN_TOKEN_FILE = "admin-token"
TLS_DIR = "tls"
TLS_CERT_FILE = "api-cert.pem"
TLS_KEY_FILE = "api-key.pem"
TLS_VALID_FOR = timedelta(days=365)


def ensure_admin_token(path: Path) -> str:
    """The admin token in ``path``, generated (mode 0600) if the file does not exist."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_admin_token(path)
    except OSError as e:
        raise ConfigError(f"admin_token_file: cannot create {path}: {e.strerror or e}") from None
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    return token


def read_admin_token(path: Path) -> str:
    """The token in an existing admin token file; ``ConfigError`` if it is empty or readable by others."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"admin_token_file: cannot read {path}: {e.strerror or e}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"admin_token_file: {path} is accessible by other users (mode {mode & 0o777:o}); chmod 600 it"
        )
    if len(text) < 16:
        raise ConfigError(f"admin_token_file: {path} must hold a token of at least 16 characters")
    return text


class AdminAuth:
    """The REST API's admin check (see the module docstring)."""

    def __init__(self, token: str | None, *, loopback_admin: bool = True, token_file: Path | None = None) -> None:
        self._token = token
        self._loopback_admin = loopback_admin
        self._where = f" (it is in {token_file} on the control plane host)" if token_file is not None else ""

    def __call__(self, request: Request) -> bool:
        if self._loopback_admin and is_loopback(request):
            return True
        header = request.headers.get("authorization")
        where = self._where if is_loopback(request) else ""  # a remote client is not told the file's path
        if not header:
            raise Unauthenticated(
                f"this request needs an admin: send 'Authorization: Bearer <admin token>'{where}"
                " (the CLI sends ATOLL_TOKEN or its context's token)"
            )
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <admin token>'")
        if self._token is None or not hmac.compare_digest(credentials.strip().encode(), self._token.encode()):
            raise Unauthenticated(f"the bearer token is not this control plane's admin token{where}")
        return True


def is_loopback(request: Request) -> bool:
    client = request.client
    return client is not None and is_loopback_host(client.host)


def ensure_tls_files(data_dir: Path, api_host: str, clock: Clock = utc_now) -> tuple[Path, Path]:
    """(cert, key) paths of the REST API's self-signed pair under ``data_dir/tls``, made if absent."""
    directory = data_dir / TLS_DIR
    cert, key = directory / TLS_CERT_FILE, directory / TLS_KEY_FILE
    if cert.exists() and key.exists():
        return cert, key
    hosts = ["localhost", "127.0.0.1", "::1"]
    for h in (socket.gethostname(), api_host):
        if h and h.isascii() and h not in hosts and h not in ("0.0.0.0", "::"):
            hosts.append(h)
    cert_pem, key_pem = generate_self_signed(hosts, valid_for=TLS_VALID_FOR, now=clock())
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(key_pem)
        cert.write_text(cert_pem, encoding="ascii")
    except OSError as e:
        raise ConfigError(f"tls_generate: cannot write {directory}: {e.strerror or e}") from None
    return cert, key
