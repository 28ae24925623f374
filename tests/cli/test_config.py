"""Client contexts: the config file, add/use/remove, and where the CLI sends requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.cli import config as cfg
from atoll.errors import ConfigError


def test_config_path_precedence(tmp_path: Path) -> None:
    assert cfg.config_path({"ATOLL_CONFIG": str(tmp_path / "c.yaml"), "XDG_CONFIG_HOME": "/x"}) == tmp_path / "c.yaml"
    assert cfg.config_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == Path("/x/atoll/config.yaml")
    assert cfg.config_path({"HOME": "/h"}) == Path("/h/.config/atoll/config.yaml")


def test_add_use_remove_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.yaml"
    c = cfg.load(path)
    assert c == cfg.ClientConfig()
    c = cfg.add_cp(c, cfg.ControlPlane("a", "http://127.0.0.1:1/"))
    c = cfg.add_cp(c, cfg.ControlPlane("b", "https://cp.example:5681", token="t0k"))
    assert c.current == "b"
    c = cfg.use_cp(c, "a")
    cfg.save(path, c)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = cfg.load(path)
    assert loaded == c
    assert loaded.find("a") == cfg.ControlPlane("a", "http://127.0.0.1:1")  # trailing slash dropped
    assert loaded.find("b") == cfg.ControlPlane("b", "https://cp.example:5681", "t0k")
    removed = cfg.remove_cp(loaded, "a")
    assert removed.current is None
    assert [p.name for p in removed.control_planes] == ["b"]


def test_errors_name_the_problem() -> None:
    c = cfg.add_cp(cfg.ClientConfig(), cfg.ControlPlane("a", "http://h:1"))
    with pytest.raises(ConfigError, match='"a" already exists'):
        cfg.add_cp(c, cfg.ControlPlane("a", "http://h:2"))
    assert cfg.add_cp(c, cfg.ControlPlane("a", "http://h:2"), overwrite=True).find("a") == cfg.ControlPlane(
        "a", "http://h:2"
    )
    with pytest.raises(ConfigError, match='no control plane named "zz"; known: a'):
        cfg.use_cp(c, "zz")
    with pytest.raises(ConfigError, match='no control plane named "zz"'):
        cfg.remove_cp(c, "zz")
    with pytest.raises(ConfigError, match='invalid control plane address "ftp://x"'):
        cfg.add_cp(c, cfg.ControlPlane("b", "ftp://x"))


def test_malformed_file(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("controlPlanes: [{name: a}]\n")
    with pytest.raises(ConfigError, match=r"controlPlanes\[0\] needs a name and an address"):
        cfg.load(p)
    p.write_text("a: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        cfg.load(p)


def test_resolve_target_precedence() -> None:
    c = cfg.add_cp(cfg.ClientConfig(), cfg.ControlPlane("ctx", "http://ctx:1", token="ctx-token"))
    assert cfg.resolve_target("http://flag:1", {"ATOLL_CP": "http://env:1"}, c) == cfg.Target(
        "http://flag:1", None, "--cp"
    )
    assert cfg.resolve_target(None, {"ATOLL_CP": "http://env:1"}, c) == cfg.Target("http://env:1", None, "ATOLL_CP")
    assert cfg.resolve_target(None, {}, c) == cfg.Target("http://ctx:1", "ctx-token", 'context "ctx"')
    assert cfg.resolve_target(None, {"ATOLL_TOKEN": "env-token"}, c).token == "env-token"
    assert cfg.resolve_target(None, {}, cfg.ClientConfig()) == cfg.Target(cfg.DEFAULT_ADDRESS, None, "default")
    with pytest.raises(ConfigError):
        cfg.resolve_target("localhost:5681", {}, c)
