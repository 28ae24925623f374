"""What every CLI command shares: the per-invocation state and how errors are printed.

The root group stores a ``State`` in click's context object: the ``--cp`` flag and ``--debug``.
``State.client()`` resolves the control plane address (flag, ``ATOLL_CP``, current context, default)
and opens a ``Client``. ``report_error`` prints any error the CLI expects to meet as a few lines on
stderr (``Error: <title>`` then one line per field) and returns the exit code; ``main`` calls it so
that users never see a Python traceback unless they ask for one with ``--debug``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import click

from atoll.cli import config as cfg
from atoll.cli.client import Client, ErrorReply, Unreachable
from atoll.errors import AtollError, ConfigError, InvalidInput


@dataclass(frozen=True, slots=True)
class State:
    cp: str | None = None
    debug: bool = False

    def target(self) -> cfg.Target:
        return cfg.resolve_target(self.cp, os.environ, cfg.load(cfg.config_path()))

    def client(self) -> Client:
        t = self.target()
        # ATOLL_CACERT: a PEM file to trust for an HTTPS API (e.g. a CP's <data_dir>/tls/api-cert.pem).
        return Client(t.address, token=t.token, source=t.source, verify=os.environ.get("ATOLL_CACERT") or True)


def state() -> State:
    """The ``State`` of the running command (a default one outside the root group, e.g. in tests)."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_object(State) if ctx is not None else None
    return obj if obj is not None else State()


def err(line: str = "") -> None:
    click.echo(line, err=True)


def report_error(e: BaseException) -> int:
    """Print ``e`` for a person and return the exit code; raise it again if it is not expected."""
    if isinstance(e, ErrorReply):
        err(f"Error: {e.title}")
        if e.details and not e.invalid_parameters:
            err(f"  {e.details}")
        for p in e.invalid_parameters:
            err(f"  {p.field}: {p.reason}" if p.field else f"  {p.reason}")
        return 1
    if isinstance(e, Unreachable):
        hint = "start one with `atoll cp`, or point the CLI elsewhere with --cp URL (or ATOLL_CP)"
        err(f"Error: cannot reach the control plane at {e.address} (from {e.source}): {e.reason}; {hint}")
        return 1
    if isinstance(e, InvalidInput):
        err(f"Error: {e.title}")
        for fe in e.errors:
            err(f"  {fe}")
        return 1
    if isinstance(e, ConfigError):
        err(f"Error: {e}")
        return 1
    if isinstance(e, AtollError):
        err(f"Error: {e}")
        return 1
    raise e
