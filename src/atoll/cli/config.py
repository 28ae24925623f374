"""Client contexts: which control plane the CLI talks to, kept in a small YAML file.

The file lives at ``$ATOLL_CONFIG`` if set, else ``$XDG_CONFIG_HOME/atoll/config.yaml``, else
``~/.config/atoll/config.yaml``. It holds named control planes and the name of the current one::

    current: prod
    controlPlanes:
      - name: prod
        address: https://cp.example:5681
        token: eyJ...            # optional, sent as a bearer token

The address the CLI uses is decided by ``resolve_target``: the ``--cp`` flag, else ``ATOLL_CP``, else
the current context, else ``DEFAULT_ADDRESS``. ``ClientConfig`` is a frozen value; the functions that
change it return a new one, and ``save`` writes it (atomically, mode 0600 since it may hold tokens).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

import yaml

from atoll.errors import ConfigError

DEFAULT_ADDRESS = "http://127.0.0.1:5681"


@dataclass(frozen=True, slots=True)
class ControlPlane:
    name: str
    address: str
    token: str | None = None


@dataclass(frozen=True, slots=True)
class ClientConfig:
    control_planes: tuple[ControlPlane, ...] = ()
    current: str | None = None

    def find(self, name: str) -> ControlPlane | None:
        for cp in self.control_planes:
            if cp.name == name:
                return cp
        return None

    @property
    def current_cp(self) -> ControlPlane | None:
        return self.find(self.current) if self.current else None


@dataclass(frozen=True, slots=True)
class Target:
    """Where requests go, and why (``source`` is shown in errors: "--cp", "ATOLL_CP", "context x")."""

    address: str
    token: str | None = None
    source: str = "default"


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The path of the client config file (it may not exist)."""
    env = os.environ if env is None else env
    if env.get("ATOLL_CONFIG"):
        return Path(env["ATOLL_CONFIG"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base).expanduser() / "atoll" / "config.yaml"


def check_address(address: str) -> str:
    """``address`` without a trailing slash, or ``ConfigError`` if it is not an http(s) URL."""
    parsed = urlparse(address)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f'invalid control plane address "{address}": expected http://HOST:PORT or https://HOST:PORT')
    return address.rstrip("/")


def load(path: Path) -> ClientConfig:
    """Read the config file; an absent file is an empty config. ``ConfigError`` if it is malformed."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return ClientConfig()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if data is None:
        return ClientConfig()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    cps: list[ControlPlane] = []
    raw_cps = data.get("controlPlanes") or []
    if not isinstance(raw_cps, list):
        raise ConfigError(f"{path}: controlPlanes must be a list")
    for i, item in enumerate(raw_cps):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("name"), str)
            or not isinstance(item.get("address"), str)
        ):
            raise ConfigError(f"{path}: controlPlanes[{i}] needs a name and an address")
        token = item.get("token")
        cps.append(ControlPlane(item["name"], item["address"], token if isinstance(token, str) else None))
    current = data.get("current")
    return ClientConfig(tuple(cps), current if isinstance(current, str) else None)


def save(path: Path, config: ClientConfig) -> None:
    data: dict[str, object] = {
        "current": config.current,
        "controlPlanes": [
            {"name": cp.name, "address": cp.address, **({"token": cp.token} if cp.token else {})}
            for cp in config.control_planes
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_cp(config: ClientConfig, cp: ControlPlane, *, overwrite: bool = False) -> ClientConfig:
    """A config with ``cp`` added and made current. ``ConfigError`` if the name is taken (unless overwrite)."""
    address = check_address(cp.address)
    if not cp.name:
        raise ConfigError("a control plane needs a name")
    existing = config.find(cp.name)
    if existing is not None and not overwrite:
        raise ConfigError(f'control plane "{cp.name}" already exists (use --overwrite to replace it)')
    cps = [c for c in config.control_planes if c.name != cp.name]
    cps.append(replace(cp, address=address))
    return ClientConfig(tuple(cps), cp.name)


def use_cp(config: ClientConfig, name: str) -> ClientConfig:
    if config.find(name) is None:
        raise ConfigError(f'no control plane named "{name}"; known: {_names(config)}')
    return replace(config, current=name)


def remove_cp(config: ClientConfig, name: str) -> ClientConfig:
    if config.find(name) is None:
        raise ConfigError(f'no control plane named "{name}"; known: {_names(config)}')
    cps = tuple(c for c in config.control_planes if c.name != name)
    return ClientConfig(cps, None if config.current == name else config.current)


def resolve_target(flag: str | None, env: Mapping[str, str], config: ClientConfig) -> Target:
    """The control plane to talk to: ``--cp``, else ``ATOLL_CP``, else the current context, else default.

    A token comes from ``ATOLL_TOKEN`` if set, else from the current context when it is the one used.
    """
    env_token = env.get("ATOLL_TOKEN") or None
    if flag:
        return Target(check_address(flag), env_token, "--cp")
    if env.get("ATOLL_CP"):
        return Target(check_address(env["ATOLL_CP"]), env_token, "ATOLL_CP")
    cp = config.current_cp
    if cp is not None:
        return Target(check_address(cp.address), env_token or cp.token, f'context "{cp.name}"')
    return Target(DEFAULT_ADDRESS, env_token, "default")


def _names(config: ClientConfig) -> str:
    return ", ".join(c.name for c in config.control_planes) or "(none)"
