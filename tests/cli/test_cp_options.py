"""`atoll cp` options generated from an OPTIONS list: flags, types, and which values are passed on."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner

from atoll.cli.cp import flag_name, make_option


class Mode(enum.Enum):
    GLOBAL = "global"
    ZONE = "zone"


@dataclass(frozen=True)
class Opt:
    name: str
    type: Any
    default: Any
    help: str


OPTIONS = [
    Opt("mode", Mode, Mode.ZONE, "Role."),
    Opt("api_port", int, 5681, "REST port."),
    Opt("data_dir", Path, None, "Data directory."),
    Opt("metrics", bool, True, "Serve metrics."),
]


def test_flag_names() -> None:
    assert flag_name("api_port") == "api-port"
    assert flag_name("kds.port") == "kds-port"


def test_only_given_flags_are_passed_and_typed() -> None:
    seen: dict[str, Any] = {}

    def cb(**kw: Any) -> None:
        ctx = click.get_current_context()
        seen.update(
            {k: v for k, v in kw.items() if ctx.get_parameter_source(k) is click.core.ParameterSource.COMMANDLINE}
        )

    cmd = click.Command("cp", callback=cb, params=[make_option(o) for o in OPTIONS])
    runner = CliRunner()
    res = runner.invoke(cmd, ["--api-port", "7000", "--mode", "global", "--no-metrics"])
    assert res.exit_code == 0, res.output
    assert seen == {"api_port": 7000, "mode": "global", "metrics": False}
    seen.clear()
    assert runner.invoke(cmd, []).exit_code == 0
    assert seen == {}
    res = runner.invoke(cmd, ["--api-port", "x"])
    assert res.exit_code == 2 and "'x' is not a valid integer" in res.output
    res = runner.invoke(cmd, ["--mode", "moon"])
    assert res.exit_code == 2 and "'moon' is not one of 'global', 'zone'" in res.output
    help_text = runner.invoke(cmd, ["--help"]).output
    assert "--api-port INTEGER" in help_text and "default: 5681" in help_text and "--data-dir PATH" in help_text
