"""``atoll config ...``: manage the named control planes the CLI talks to (see ``atoll.cli.config``)."""

from __future__ import annotations

import click

from atoll.cli import config as cfg
from atoll.cli.render import make_console, print_table


@click.group(
    name="config",
    epilog="""\b
Examples:
  atoll config add-cp prod --address https://cp.example:5681
  atoll config use-cp prod
  atoll config list""",
)
def config_group() -> None:
    """Manage named control planes (contexts) in the client config file."""


@config_group.command(
    name="add-cp",
    epilog="""\b
Example:
  atoll config add-cp local --address http://127.0.0.1:5681""",
)
@click.argument("name")
@click.option("--address", required=True, help="REST API URL of the control plane (http://HOST:PORT).")
@click.option("--token", help="Bearer token sent with every request.")
@click.option("--overwrite", is_flag=True, help="Replace a control plane of the same name.")
def add_cp(name: str, address: str, token: str | None, overwrite: bool) -> None:
    """Add a control plane and make it the current one."""
    path = cfg.config_path()
    new = cfg.add_cp(cfg.load(path), cfg.ControlPlane(name, address, token), overwrite=overwrite)
    cfg.save(path, new)
    added = new.find(name)
    click.echo(f'added control plane "{name}" ({added.address if added else address}); it is now the current one')


@config_group.command(
    name="use-cp",
    epilog="""\b
Example:
  atoll config use-cp prod""",
)
@click.argument("name")
def use_cp(name: str) -> None:
    """Make a known control plane the current one."""
    path = cfg.config_path()
    cfg.save(path, cfg.use_cp(cfg.load(path), name))
    click.echo(f'switched to control plane "{name}"')


@config_group.command(
    name="remove-cp",
    epilog="""\b
Example:
  atoll config remove-cp prod""",
)
@click.argument("name")
def remove_cp(name: str) -> None:
    """Forget a control plane (if it was current, none is)."""
    path = cfg.config_path()
    cfg.save(path, cfg.remove_cp(cfg.load(path), name))
    click.echo(f'removed control plane "{name}"')


@config_group.command(
    name="list",
    epilog="""\b
Example:
  atoll config list""",
)
def list_cps() -> None:
    """List the known control planes; the current one is marked with *."""
    path = cfg.config_path()
    c = cfg.load(path)
    if not c.control_planes:
        click.echo(f"No control planes in {path}; the CLI uses {cfg.DEFAULT_ADDRESS} unless --cp or ATOLL_CP is set.")
        return
    rows = [
        ["*" if cp.name == c.current else "", cp.name, cp.address, "yes" if cp.token else ""] for cp in c.control_planes
    ]
    print_table(make_console(), ["CURRENT", "NAME", "ADDRESS", "TOKEN"], rows)
