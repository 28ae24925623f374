"""The rules between control-plane options, checked once every option has its type and range.

``check_config(config)`` is called by ``atoll.cp.config.load_config`` on the ``CpConfig`` it built from
the layers (each value already converted and range-checked on its own). It checks what no single option
can: options that need each other (``zone`` with ``mode=zone``, ``store_dsn`` with ``store=postgres``,
a certificate with its key, ``zone_token_file`` with ``global_address``), options that exclude each other
(``tls_generate`` and ``tls_cert``, an ADS certificate with ``xds_tls: off``), that every file option names
an existing file, and that no two servers of this CP are given one port. It only reads: the first rule
broken raises ``ConfigError`` whose message starts with the option to fix (``tls_key: tls_cert and
tls_key go together``); a configuration that passes is left as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from atoll.errors import ConfigError
from atoll.resources.base import check_name

if TYPE_CHECKING:
    from atoll.cp.config import CpConfig


def check_config(c: CpConfig) -> None:
    """Every rule between options; the first one broken raises ``ConfigError`` naming an option."""
    if c.mode == "zone" and not c.zone:
        raise ConfigError("zone: required with mode=zone (the name of this zone)")
    if c.mode == "global" and c.zone:
        raise ConfigError("zone: must not be set with mode=global")
    if c.zone is not None:
        try:
            check_name(c.zone)
        except ValueError as e:
            raise ConfigError(f"zone: {e}") from None
    if c.store == "postgres" and not c.store_dsn:
        raise ConfigError("store_dsn: required with store=postgres")
    if c.store != "postgres" and c.store_dsn:
        raise ConfigError(f"store_dsn: only used with store=postgres (store is {c.store})")
    if (c.tls_cert is None) != (c.tls_key is None):
        raise ConfigError(
            "tls_key: tls_cert and tls_key go together"
            if c.tls_key is None
            else "tls_cert: tls_cert and tls_key go together"
        )
    if c.tls_generate and c.tls_cert is not None:
        raise ConfigError("tls_generate: not with tls_cert/tls_key (use your files or a generated pair, not both)")
    for name, path in (("tls_cert", c.tls_cert), ("tls_key", c.tls_key)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{name}: no such file {path}")
    _check_kds(c)
    _check_xds_tls(c)
    ports = {"api_port": c.api_port, "diagnostics_port": c.diagnostics_port, "xds_port": c.xds_port}
    if c.mode == "global":
        ports["kds_port"] = c.kds_port
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port in seen:
            raise ConfigError(f"{name}: {port} is already used by {seen[port]}")
        seen[port] = name


def _check_kds(c: CpConfig) -> None:
    """Rules of the multi-zone options (global_address, zone_token_file, KDS TLS)."""
    if c.global_address is not None:
        if c.mode != "zone":
            raise ConfigError(f"global_address: only used with mode=zone (mode is {c.mode})")
        from atoll.kds.client import parse_global_addresses

        try:
            parse_global_addresses(c.global_address)
        except ValueError as e:
            raise ConfigError(f"global_address: {e}") from None
        if c.zone_token_file is None:
            raise ConfigError("zone_token_file: required with global_address (the zone token global accepts)")
    else:
        for name in ("zone_token_file", "global_ca_file"):
            if getattr(c, name) is not None:
                raise ConfigError(f"{name}: only used with global_address (a zone CP that syncs with global)")
    for name in ("zone_token_file", "global_ca_file", "kds_tls_cert", "kds_tls_key"):
        path = getattr(c, name)
        if path is not None and not path.is_file():
            raise ConfigError(f"{name}: no such file {path}")
    if (c.kds_tls_cert is None) != (c.kds_tls_key is None):
        missing = "kds_tls_key" if c.kds_tls_key is None else "kds_tls_cert"
        raise ConfigError(f"{missing}: kds_tls_cert and kds_tls_key go together")
    if c.kds_tls_cert is not None and c.mode != "global":
        raise ConfigError(f"kds_tls_cert: only used with mode=global (mode is {c.mode})")


def _check_xds_tls(c: CpConfig) -> None:
    for name in ("xds_tls_cert", "xds_tls_key"):
        path = getattr(c, name)
        if path is not None and not path.is_file():
            raise ConfigError(f"{name}: no such file {path}")
    if (c.xds_tls_cert is None) != (c.xds_tls_key is None):
        missing = "xds_tls_key" if c.xds_tls_key is None else "xds_tls_cert"
        raise ConfigError(f"{missing}: xds_tls_cert and xds_tls_key go together")
    if c.xds_tls_cert is not None and c.xds_tls == "off":
        raise ConfigError("xds_tls_cert: given, but xds_tls is off")


__all__ = ["check_config"]
