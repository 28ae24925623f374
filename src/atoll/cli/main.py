"""The ``atoll`` entry point: the root command group, its global options, and error handling.

``main`` runs the click group in non-standalone mode and turns every error the CLI expects (REST
errors, an unreachable control plane, invalid input, bad configuration, usage errors) into a short
message on stderr and a non-zero exit code. Only ``--debug`` (or ``ATOLL_DEBUG=1``) shows a Python
traceback, for unexpected errors too. Commands that pull in heavy parts of Atoll (``cp``, ``demo``,
``inspect``) are imported only when they are used, so that ``atoll get`` starts quickly.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable

import click

from atoll import __version__
from atoll.cli.client import ErrorReply, Unreachable
from atoll.cli.common import State, err, report_error, state
from atoll.cli.completion import complete_names, completion
from atoll.cli.config_cmd import config_group
from atoll.cli.dp import dp
from atoll.cli.resources import apply, delete, get
from atoll.cli.token import token
from atoll.errors import AtollError

_debug = False


def _build_cp() -> click.Command:
    from atoll.cli.cp import build_cp_command

    return build_cp_command()


def _build_inspect() -> click.Command | None:
    if importlib.util.find_spec("atoll.cli.inspect") is None:
        return None
    cmd = getattr(importlib.import_module("atoll.cli.inspect"), "inspect", None)
    return cmd if isinstance(cmd, click.Command) else None


class RootGroup(click.Group):
    """The root group: eager commands plus lazily built ones (``cp``, ``inspect``)."""

    lazy: dict[str, Callable[[], click.Command | None]] = {"cp": _build_cp, "inspect": _build_inspect}

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        names.add("cp")
        if importlib.util.find_spec("atoll.cli.inspect") is not None:
            names.add("inspect")
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in self.lazy:
            cmd = self.lazy[cmd_name]()
        return cmd


@click.group(
    cls=RootGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    epilog="""\b
Examples:
  atoll cp                              # run a standalone control plane
  atoll apply -f mesh.yaml              # create or update resources
  atoll get dataplanes -m default       # list them
  atoll --cp http://10.0.0.5:5681 get meshes""",
)
@click.option(
    "--cp",
    "cp_address",
    metavar="URL",
    help="Control plane REST API (default: $ATOLL_CP, else the current context, else http://127.0.0.1:5681).",
)
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
@click.version_option(__version__, "--version", prog_name="atoll", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, cp_address: str | None, debug: bool) -> None:
    """Atoll: a multi-zone service mesh. One CLI for the control plane, the data plane and the REST API."""
    global _debug
    _debug = _debug or debug
    ctx.obj = State(cp=cp_address, debug=debug)


@cli.command(
    epilog="""\b
Example:
  atoll version
  atoll --cp http://10.0.0.5:5681 version""",
)
def version() -> None:
    """Show the client version and, if reachable, the control plane's."""
    click.echo(f"Client: atoll {__version__}")
    try:
        with state().client() as client:
            info = client.index()
            address = client.address
    except (Unreachable, ErrorReply) as e:
        reason = e.reason if isinstance(e, Unreachable) else str(e)
        click.echo(f"Server: not reachable at {state().target().address} ({reason})")
        return
    extra = ", ".join(f"{k}: {info[k]}" for k in ("mode", "zone", "instanceId") if info.get(k))
    product = info.get("product") or info.get("tagline") or "atoll"
    click.echo(f"Server: {product} {info.get('version', '?')}" + (f" ({extra})" if extra else "") + f" at {address}")


@cli.command(
    epilog="""\b
Example:
  atoll demo            # Ctrl-C stops everything it started""",
)
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (default: until Ctrl-C).")
@click.option("--keep", is_flag=True, help="Keep the demo's logs and data directory after it stops.")
def demo(duration: float | None, keep: bool) -> None:
    """Run a whole mesh on loopback with live traffic."""
    from atoll.demo import run_demo

    code = run_demo(duration=duration, keep=keep)
    if isinstance(code, int) and code:
        raise SystemExit(code)


cli.add_command(apply)
cli.add_command(get)
cli.add_command(delete)
cli.add_command(config_group)
cli.add_command(dp)
cli.add_command(token)
cli.add_command(completion)
cli.add_command(complete_names)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit: 0 on success, 1 on errors, 2 on usage errors, 130 on Ctrl-C."""
    global _debug
    args = sys.argv[1:] if argv is None else argv
    _debug = os.environ.get("ATOLL_DEBUG", "") not in ("", "0") or "--debug" in args
    try:
        rv = cli.main(args=args, prog_name="atoll", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        err("Aborted.")
        sys.exit(1)
    except KeyboardInterrupt:
        err("Interrupted.")
        sys.exit(130)
    except BrokenPipeError:  # `atoll get ... | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    except (ErrorReply, Unreachable, AtollError) as e:
        if _debug:
            traceback.print_exc()
        sys.exit(report_error(e))
    except SystemExit:
        raise
    except Exception as e:
        if _debug:
            traceback.print_exc()
        else:
            err(f"Error: unexpected {type(e).__name__}: {e} (run with --debug for the traceback)")
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
