"""``load_config``: precedence flags > ATOLL_* env > YAML file > defaults, conversion, precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.cp.config import OPTIONS, CpConfig, load_config
from atoll.errors import ConfigError


def test_defaults(tmp_path: Path) -> None:
    c = load_config({}, {"HOME": str(tmp_path)}, None)
    assert c == CpConfig(data_dir=tmp_path / ".local/share/atoll")
    assert (c.mode, c.api_host, c.api_port, c.diagnostics_port, c.xds_port) == (
        "standalone",
        "127.0.0.1",
        5681,
        5680,
        5678,
    )
    assert (c.store, c.log_format, c.log_level, c.max_body_bytes) == ("sqlite", "text", "info", 1024 * 1024)
    assert c.store_path == tmp_path / ".local/share/atoll/atoll.db"


def test_data_dir_follows_xdg_data_home(tmp_path: Path) -> None:
    c = load_config({}, {"XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": "/nowhere"}, None)
    assert c.data_dir == tmp_path / "xdg" / "atoll"


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    f = tmp_path / "cp.yaml"
    f.write_text("api_port: 1001\ndiagnostics-port: 1002\nxds_port: 1003\nlog_level: debug\n")
    env = {"ATOLL_API_PORT": "2001", "ATOLL_DIAGNOSTICS_PORT": "2002", "HOME": str(tmp_path)}
    c = load_config({"api_port": 3001, "log_format": None}, env, f)
    assert c.api_port == 3001  # flag
    assert c.diagnostics_port == 2002  # env beats the file
    assert c.xds_port == 1003  # file
    assert c.log_level == "debug"  # file
    assert c.log_format == "text"  # a flag given as None is "not given": default


def test_every_option_is_a_config_field_with_env_and_flag() -> None:
    names = [o.name for o in OPTIONS]
    assert names == list(CpConfig.__dataclass_fields__)
    port = next(o for o in OPTIONS if o.name == "api_port")
    assert (port.env, port.flag, port.type, port.default) == ("ATOLL_API_PORT", "--api-port", int, 5681)
    assert next(o for o in OPTIONS if o.name == "store").choices == ("sqlite", "memory", "postgres")
    assert all(o.help for o in OPTIONS)


def test_modes_and_zone(tmp_path: Path) -> None:
    c = load_config({"mode": "zone", "zone": "east"}, {"HOME": str(tmp_path)}, None)
    assert (c.mode, c.zone) == ("zone", "east")
    with pytest.raises(ConfigError, match=r"^zone: required with mode=zone"):
        load_config({"mode": "zone"}, {}, None)
    with pytest.raises(ConfigError, match=r"^zone: must not be set with mode=global"):
        load_config({"mode": "global", "zone": "east"}, {}, None)
    with pytest.raises(ConfigError, match=r'^zone: invalid name "East!"'):
        load_config({"mode": "zone", "zone": "East!"}, {}, None)


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({}, {"ATOLL_API_PORT": "abc"}, 'api_port: must be a whole number, got "abc" (from ATOLL_API_PORT)'),
        ({"api_port": 70000}, {}, 'api_port: must be a port number 1..65535, got "70000" (from --api-port)'),
        (
            {},
            {"ATOLL_STORE": "mysql"},
            'store: must be one of sqlite, memory, postgres, got "mysql" (from ATOLL_STORE)',
        ),
        ({"log_format": "xml"}, {}, 'log_format: must be one of text, json, got "xml" (from --log-format)'),
        ({"max_body_bytes": 0}, {}, 'max_body_bytes: must be at least 1, got "0" (from --max-body-bytes)'),
        ({"store": "postgres"}, {}, "store_dsn: required with store=postgres"),
        ({"store_dsn": "postgresql://x"}, {}, "store_dsn: only used with store=postgres (store is sqlite)"),
        ({"api_port": 5680}, {}, "diagnostics_port: 5680 is already used by api_port"),
        ({"api_prot": 1}, {}, "api_prot: unknown option; known: mode, zone,"),
    ],
)
def test_errors_name_the_option_and_the_source(flags: dict[str, object], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(flags, env, None)
    assert str(e.value).startswith(message)


def test_file_errors(tmp_path: Path) -> None:
    f = tmp_path / "cp.yaml"
    f.write_text("api_port: 1\nbogus: 2\n")
    with pytest.raises(ConfigError, match=r"^bogus: unknown option in config file .*cp.yaml"):
        load_config({}, {}, f)
    f.write_text("api_port: [1\n")
    with pytest.raises(ConfigError, match=r"config file .*cp.yaml: invalid YAML at line 2"):
        load_config({}, {}, f)
    f.write_text("- api_port\n")
    with pytest.raises(ConfigError, match=r"must be a mapping of option: value"):
        load_config({}, {}, f)
    f.write_text("api_port: true\n")
    with pytest.raises(ConfigError, match=r"^api_port: must be a whole number, got \"True\" \(from config file"):
        load_config({}, {}, f)
    with pytest.raises(ConfigError, match=r"cannot read it"):
        load_config({}, {}, tmp_path / "missing.yaml")


def test_vip_cidr(tmp_path: Path) -> None:
    assert load_config({}, {"HOME": str(tmp_path)}, None).vip_cidr == "240.0.0.0/4"
    assert load_config({"vip_cidr": "10.200.0.0/16"}, {"HOME": str(tmp_path)}, None).vip_cidr == "10.200.0.0/16"
    with pytest.raises(ConfigError, match=r'^vip_cidr: "240.0.0.0/40" is not a CIDR such as 240.0.0.0/4$'):
        load_config({"vip_cidr": "240.0.0.0/40"}, {"HOME": str(tmp_path)}, None)
