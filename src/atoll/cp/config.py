"""Control-plane configuration: one frozen ``CpConfig``, described option by option in ``OPTIONS``.

``load_config(flags, env, file)`` merges four layers, each overriding the ones after it:
command-line flags (a mapping of option name -> value; ``None`` means "not given"), ``ATOLL_<NAME>``
environment variables (``ATOLL_API_PORT=5681``), a YAML file of ``name: value`` pairs (``api_port``
or ``api-port``), then the defaults in ``OPTIONS``. Values are converted to the option's type and
checked; any problem raises ``ConfigError`` naming the option and where the bad value came from
(``api_port: must be a port number 1..65535, got "70000" (from ATOLL_API_PORT)``). The rules between
options (``tls_cert`` needs ``tls_key``, ports differ, ...) are ``atoll.cp.config_rules``.

The CLI builds its ``atoll cp`` flags from ``OPTIONS`` (``Option.flag``, ``Option.help``,
``Option.choices``), so an option added here appears on the command line, in the environment and
in the file at once.

``api_host`` defaults to loopback (``127.0.0.1``), unlike Kuma's ``0.0.0.0``. Writes, secrets and
token endpoints need an admin: a loopback client (unless ``loopback_admin: false``) or one sending
``Authorization: Bearer <token>`` with the token of ``admin_token_file`` (``<data_dir>/admin-token``,
generated at first start, mode 0600). Set ``api_host: 0.0.0.0`` to expose the API, ideally with TLS:
``tls_cert`` + ``tls_key`` (PEM files), or ``tls_generate: true`` for a self-signed pair in
``<data_dir>/tls/`` (clients trust ``api-cert.pem``). With TLS the API port speaks HTTPS only.
``auth: none`` lets proxies connect without a dataplane token (local experiments only).

ADS speaks TLS when ``xds_tls`` says so: ``auto`` (the default) turns it on for any ``xds_host`` that is
not a loopback address, ``on``/``off`` force it. Its pair is ``xds_tls_cert`` + ``xds_tls_key``, or a
self-signed one generated in ``<data_dir>/xds-tls.crt`` (proxies trust it: ``atoll dp run --ca-file``).
Plaintext ADS never sends SDS secrets to a remote peer. ``xds_first_message_timeout`` closes an ADS
stream that sends no request that long.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from atoll.cp.config_rules import check_config
from atoll.errors import ConfigError

MODES = ("standalone", "zone", "global")
STORES = ("sqlite", "memory", "postgres")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
AUTH_MODES = ("token", "none")
BOOLEAN = ("true", "false")
XDS_TLS_MODES = ("auto", "on", "off")
ENV_PREFIX = "ATOLL_"


def default_data_dir(env: Mapping[str, str]) -> Path:
    """``$XDG_DATA_HOME/atoll``, else ``~/.local/share/atoll``."""
    xdg = env.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg) / "atoll"
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".local" / "share" / "atoll"


@dataclass(frozen=True, slots=True)
class CpConfig:
    """Everything a control plane process needs to start. Build it with ``load_config``."""

    mode: str = "standalone"
    zone: str | None = None
    data_dir: Path = field(default_factory=lambda: default_data_dir(os.environ))
    api_host: str = "127.0.0.1"
    api_port: int = 5681
    diagnostics_host: str = "127.0.0.1"
    diagnostics_port: int = 5680
    xds_host: str = "127.0.0.1"
    xds_port: int = 5678
    xds_advertised_host: str | None = None
    xds_tls: str = "auto"
    xds_tls_cert: Path | None = None
    xds_tls_key: Path | None = None
    xds_first_message_timeout: float = 10.0
    xds_coalesce: float = 0.02
    vip_cidr: str = "240.0.0.0/4"
    dataplane_grace: float = 10.0
    store: str = "sqlite"
    store_dsn: str | None = None
    allow_empty: bool = False
    log_format: str = "text"
    log_level: str = "info"
    max_body_bytes: int = 1024 * 1024
    shutdown_timeout: float = 10.0
    auth: str = "token"
    admin_token_file: Path | None = None
    loopback_admin: bool = True
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_generate: bool = False
    kds_host: str = "127.0.0.1"
    kds_port: int = 5685
    kds_tls_cert: Path | None = None
    kds_tls_key: Path | None = None
    global_address: str | None = None
    zone_token_file: Path | None = None
    global_ca_file: Path | None = None
    skip_default_mesh: bool = False

    @property
    def store_path(self) -> Path:
        """The SQLite database file (``<data_dir>/atoll.db``)."""
        return self.data_dir / "atoll.db"

    @property
    def admin_token_path(self) -> Path:
        """``admin_token_file``, else ``<data_dir>/admin-token``."""
        return self.admin_token_file or self.data_dir / "admin-token"

    @property
    def xds_tls_enabled(self) -> bool:
        """Whether ADS is served over TLS (``xds_tls``; ``auto``: unless ``xds_host`` is loopback)."""
        if self.xds_tls != "auto":
            return self.xds_tls == "on"
        return not is_loopback_host(self.xds_host)

    @property
    def api_tls(self) -> bool:
        return self.tls_generate or self.tls_cert is not None


@dataclass(frozen=True, slots=True)
class Option:
    """One configuration option: its name (a ``CpConfig`` field), type, default and help text.

    ``default`` ``None`` with a non-optional field means "computed" (see ``help``)."""

    name: str
    type: type
    default: object
    help: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS: list[Option] = [
    Option("mode", str, "standalone", "Role of this control plane.", choices=MODES),
    Option("zone", str, None, "Name of the zone this control plane serves (required with mode=zone)."),
    Option(
        "data_dir",
        Path,
        None,
        "Directory for the SQLite store and other state (default: $XDG_DATA_HOME/atoll or ~/.local/share/atoll).",
    ),
    Option("api_host", str, "127.0.0.1", "Address the REST API listens on (loopback by default; 0.0.0.0 for all)."),
    Option("api_port", int, 5681, "Port of the REST API.", minimum=1, maximum=65535),
    Option("diagnostics_host", str, "127.0.0.1", "Address of the diagnostics server (/ready, /healthy, /metrics)."),
    Option("diagnostics_port", int, 5680, "Port of the diagnostics server.", minimum=1, maximum=65535),
    Option("xds_host", str, "127.0.0.1", "Address ADS (xDS for proxies) listens on (0.0.0.0 for all)."),
    Option("xds_port", int, 5678, "Port of ADS, the xDS server proxies connect to.", minimum=1, maximum=65535),
    Option(
        "xds_advertised_host",
        str,
        None,
        "Host proxies are told to reach ADS on (default: the host they used for POST /bootstrap).",
    ),
    Option(
        "xds_tls",
        str,
        "auto",
        "Serve ADS over TLS: auto (on unless xds_host is a loopback address), on or off.",
        choices=XDS_TLS_MODES,
    ),
    Option(
        "xds_tls_cert",
        Path,
        None,
        "PEM certificate ADS serves TLS with (default: self-signed, generated in <data_dir>/xds-tls.crt).",
    ),
    Option("xds_tls_key", Path, None, "PEM private key of xds_tls_cert."),
    Option(
        "xds_first_message_timeout",
        float,
        10.0,
        "Seconds an ADS stream may stay silent before its first request; it is closed after that.",
        minimum=0.1,
    ),
    Option(
        "xds_coalesce",
        float,
        0.02,
        "Seconds to gather store changes into one config push (0 to push each change alone).",
        minimum=0.0,
        maximum=1.0,
    ),
    Option(
        "vip_cidr",
        str,
        "240.0.0.0/4",
        "Range the virtual IPs of <service>.mesh and VirtualOutbound names are taken from (zone and standalone).",
    ),
    Option(
        "dataplane_grace",
        float,
        10.0,
        "Seconds a disconnected proxy's Dataplane is kept before it is removed (unless it reconnects).",
        minimum=0.0,
    ),
    Option("store", str, "sqlite", "Resource store backend.", choices=STORES),
    Option("store_dsn", str, None, "PostgreSQL connection string (required with store=postgres)."),
    Option(
        "allow_empty",
        str,
        False,
        "Start even though the data dir was in use and its database is now missing, empty or behind"
        " the revision this CP last saw (see atoll.cp.store_checks).",
        choices=BOOLEAN,
    ),
    Option("log_format", str, "text", "Log line format.", choices=LOG_FORMATS),
    Option("log_level", str, "info", "Lowest level of log records written.", choices=LOG_LEVELS),
    Option("max_body_bytes", int, 1024 * 1024, "Largest REST request body accepted, in bytes.", minimum=1),
    Option(
        "shutdown_timeout",
        float,
        10.0,
        "Seconds a graceful shutdown may take before remaining work is cancelled.",
        minimum=0.1,
    ),
    Option("auth", str, "token", "How proxies authenticate: dataplane/zone tokens, or none (experiments).", AUTH_MODES),
    Option(
        "admin_token_file",
        Path,
        None,
        "File holding the REST API admin token, generated (mode 0600) if absent (default: <data_dir>/admin-token).",
    ),
    Option(
        "loopback_admin",
        str,
        True,
        "Treat REST clients on loopback addresses as admins without a token.",
        choices=BOOLEAN,
    ),
    Option("tls_cert", Path, None, "PEM certificate (chain) the REST API serves HTTPS with (needs tls_key)."),
    Option("tls_key", Path, None, "PEM private key of tls_cert."),
    Option(
        "tls_generate",
        str,
        False,
        "Serve the REST API over HTTPS with a self-signed pair generated in <data_dir>/tls/.",
        choices=BOOLEAN,
    ),
    Option("kds_host", str, "127.0.0.1", "Address the KDS server of a global CP listens on (0.0.0.0 for all)."),
    Option("kds_port", int, 5685, "Port of KDS, where zone CPs connect to a global CP.", minimum=1, maximum=65535),
    Option(
        "kds_tls_cert",
        Path,
        None,
        "PEM certificate of the global KDS server (default: self-signed, generated in <data_dir>/kds-tls.crt).",
    ),
    Option("kds_tls_key", Path, None, "PEM private key of kds_tls_cert."),
    Option(
        "global_address",
        str,
        None,
        "KDS address of the global CP a zone CP syncs with: grpcs://host:5685 (grpc:// is plaintext); "
        "several global instances as a comma-separated list (tried in turn). Without it a zone CP runs standalone.",
    ),
    Option(
        "zone_token_file", Path, None, "File with this zone's token for the global CP (required with global_address)."
    ),
    Option(
        "global_ca_file",
        Path,
        None,
        "PEM CA certificate that signed the global KDS certificate (default: system roots)."
        " Global's self-signed one is <global's data_dir>/kds-tls.crt; global logs its path at start.",
    ),
    Option(
        "skip_default_mesh",
        bool,
        False,
        "Do not create mesh 'default' (with its default policies) at start; a global or standalone CP"
        " creates it whenever it is missing at start, as Kuma does (a federated zone gets global's).",
    ),
]

_BY_NAME = {o.name: o for o in OPTIONS}
assert set(_BY_NAME) == {f.name for f in fields(CpConfig)}, "OPTIONS and CpConfig disagree"


def load_config(flags: Mapping[str, object], env: Mapping[str, str], file: Path | None) -> CpConfig:
    """The configuration from flags > ``ATOLL_*`` env > YAML ``file`` > defaults; ``ConfigError``."""
    values: dict[str, Any] = {}
    for name, (raw, source) in _layers(flags, env, file).items():
        values[name] = _convert(_BY_NAME[name], raw, source)
    for opt in OPTIONS:
        if opt.name not in values and opt.default is not None:
            values[opt.name] = opt.default
    if values.get("data_dir") is None:
        values["data_dir"] = default_data_dir(env)
    config = CpConfig(**values)
    check_config(config)
    return config


def _layers(flags: Mapping[str, object], env: Mapping[str, str], file: Path | None) -> dict[str, tuple[object, str]]:
    """Option name -> (raw value, where it came from), the highest-precedence layer winning."""
    out: dict[str, tuple[object, str]] = {}
    if file is not None:
        for key, value in _read_file(file).items():
            name = key.replace("-", "_")
            if name not in _BY_NAME:
                raise ConfigError(f"{key}: unknown option in config file {file}; known: {', '.join(_BY_NAME)}")
            if value is not None:
                out[name] = (value, f"config file {file}")
    for opt in OPTIONS:
        if opt.env in env and env[opt.env] != "":
            out[opt.name] = (env[opt.env], opt.env)
    for key, value in flags.items():
        name = key.replace("-", "_")
        if name not in _BY_NAME:
            raise ConfigError(f"{key}: unknown option; known: {', '.join(_BY_NAME)}")
        if value is not None:
            out[name] = (value, _BY_NAME[name].flag)
    return out


def _read_file(file: Path) -> dict[str, object]:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"config file {file}: cannot read it: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"config file {file}: invalid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {file}: must be a mapping of option: value, got {type(data).__name__}")
    return {str(k): v for k, v in data.items()}


def _convert(opt: Option, raw: object, source: str) -> object:
    def bad(msg: str) -> ConfigError:
        return ConfigError(f'{opt.name}: {msg}, got "{raw}" (from {source})')

    value: object
    if opt.type is bool:  # a --flag/--no-flag, or true/false from the environment or the file
        if isinstance(raw, bool):
            return raw
        if not isinstance(raw, str) or raw.strip().lower() not in BOOLEAN:
            raise bad("must be true or false")
        return raw.strip().lower() == "true"
    if opt.type is int:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise bad("must be a whole number")
        try:
            value = int(raw)
        except ValueError:
            raise bad("must be a whole number") from None
    elif opt.type is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise bad("must be a number")
        try:
            value = float(raw)
        except ValueError:
            raise bad("must be a number") from None
    elif opt.type is Path:
        if not isinstance(raw, str | os.PathLike) or str(raw) == "":
            raise bad("must be a path")
        value = Path(os.path.expanduser(str(raw)))
    else:
        if isinstance(raw, bool) and opt.choices == BOOLEAN:  # YAML true/false
            return raw
        if not isinstance(raw, str):
            raise bad("must be a string")
        value = raw.strip()
        if opt.choices is not None:
            value = str(value).lower()
            if value not in opt.choices:
                raise bad(f"must be one of {', '.join(opt.choices)}")
            if opt.choices == BOOLEAN:
                value = value == "true"
    if isinstance(value, int | float):
        if (opt.minimum is not None and value < opt.minimum) or (opt.maximum is not None and value > opt.maximum):
            if opt.maximum is not None and opt.minimum is not None and opt.name.endswith("_port"):
                raise bad(f"must be a port number {int(opt.minimum)}..{int(opt.maximum)}")
            if opt.maximum is not None:
                raise bad(f"must be between {opt.minimum} and {opt.maximum}")
            raise bad(f"must be at least {opt.minimum}")
    return value


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
