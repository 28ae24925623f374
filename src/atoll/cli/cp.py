"""``atoll cp``: run a control plane, with one click option per entry of ``atoll.cp.config.OPTIONS``.

The control-plane package owns its options (name, type, default, help) and their precedence
(flag > ``ATOLL_*`` environment > ``--config`` file > default, in ``load_config``). This module only
turns each option into a click option and passes on the flags the user actually typed (click's
parameter source is ``COMMANDLINE``), so that an option left out can still come from the environment
or the file. ``build_cp_command`` is called lazily by the root group: importing the control plane is
only paid for by ``atoll cp`` (and ``atoll --help``).
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

EPILOG = """\b
Examples:
  atoll cp                                          # a standalone CP, SQLite store under the data dir
  atoll cp --store memory --api-port 15681
  atoll cp --config cp.yaml                         # YAML file; flags and ATOLL_* env override it"""


def _attr(opt: Any, key: str, default: Any = None) -> Any:
    if isinstance(opt, Mapping):
        return opt.get(key, default)
    return getattr(opt, key, default)


_TYPE_NAMES: dict[str, click.ParamType[Any]] = {
    "int": click.INT,
    "float": click.FLOAT,
    "str": click.STRING,
    "string": click.STRING,
    "path": click.Path(path_type=Path),
    "duration": click.STRING,
}


def _param_type(typ: Any, choices: Any) -> click.ParamType[Any]:
    if choices:
        return click.Choice([str(c.value if isinstance(c, enum.Enum) else c) for c in choices], case_sensitive=False)
    if isinstance(typ, type) and issubclass(typ, enum.Enum):
        return click.Choice([str(m.value) for m in typ])
    if typ is int:
        return click.INT
    if typ is float:
        return click.FLOAT
    if isinstance(typ, type) and issubclass(typ, Path):
        return click.Path(path_type=Path)
    if isinstance(typ, str):
        return _TYPE_NAMES.get(typ.lower(), click.STRING)
    return click.STRING


def flag_name(name: str) -> str:
    """``api_port`` / ``api.port`` / ``api-port`` -> ``api-port``."""
    return name.replace("_", "-").replace(".", "-").lower()


def param_name(name: str) -> str:
    """The Python identifier click uses for an option (``api.port`` -> ``api_port``)."""
    return re.sub(r"\W", "_", name)


def make_option(opt: Any) -> click.Option:
    """The click option of one ``OPTIONS`` entry; its parameter name is ``param_name(name)``."""
    name = str(_attr(opt, "name"))
    flag = flag_name(name)
    pname = param_name(name)
    typ = _attr(opt, "type", str)
    default = _attr(opt, "default")
    help_text = str(_attr(opt, "help", "") or "")
    env = _attr(opt, "env")
    if env:
        help_text += f" [env: {env}]"
    if isinstance(default, enum.Enum):
        default = default.value
    shown = None if default is None else str(default).lower() if isinstance(default, bool) else str(default)
    if shown is not None and shown != "":
        help_text += f"  [default: {shown}]"
    if typ is bool or (isinstance(typ, str) and typ.lower() == "bool"):
        return click.Option([f"--{flag}/--no-{flag}", pname], default=None, help=help_text)
    multiple = typ in (list, tuple) or (isinstance(typ, str) and typ.lower() in ("list", "list[str]"))
    return click.Option(
        [f"--{flag}", pname],
        type=click.STRING if multiple else _param_type(typ, _attr(opt, "choices")),
        multiple=multiple,
        default=None,
        help=help_text,
    )


def build_cp_command() -> click.Command:
    """The ``atoll cp`` command, or a stand-in that explains why the control plane cannot run."""
    try:
        from atoll.cp.config import OPTIONS, load_config
    except ImportError as e:
        reason = str(e)

        @click.command(name="cp", epilog=EPILOG)
        def cp_missing() -> None:
            """Run a control plane (global, zone or standalone)."""
            raise click.ClickException(f"the control plane is not available in this installation: {reason}")

        return cp_missing

    options = [make_option(o) for o in OPTIONS]
    names = [str(_attr(o, "name")) for o in OPTIONS]

    def run(**kwargs: Any) -> None:
        ctx = click.get_current_context()
        flags: dict[str, Any] = {}
        for n in names:
            if ctx.get_parameter_source(param_name(n)) is ParameterSource.COMMANDLINE:
                v = kwargs[param_name(n)]
                flags[n] = list(v) if isinstance(v, tuple) else v
        file: Path | None = kwargs.get("config_file")
        config = load_config(flags, dict(os.environ), file)
        from atoll.cp.run import run_cp

        ctx.exit(run_cp(config))

    file_opt = click.Option(
        ["--config", "config_file"],
        type=click.Path(path_type=Path, exists=True, dir_okay=False),
        default=None,
        help="YAML config file (keys as the option names); flags and ATOLL_* variables override it.",
    )
    callback: Callable[..., None] = run
    return click.Command(
        name="cp",
        callback=callback,
        params=[file_opt, *options],
        help="Run a control plane (global, zone or standalone) until interrupted.",
        short_help="Run a control plane (global, zone or standalone).",
        epilog=EPILOG,
    )
