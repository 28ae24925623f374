"""Every command and group has --help with a one-line description and an example (in-process)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from atoll.cli.main import cli


def commands() -> list[list[str]]:
    out: list[list[str]] = []
    ctx = click.Context(cli)

    def walk(group: click.Group, prefix: list[str]) -> None:
        for name in group.list_commands(ctx):
            cmd = group.get_command(ctx, name)
            assert cmd is not None
            out.append([*prefix, name])
            if isinstance(cmd, click.Group) and name != "dp":  # dp's subcommands belong to the dp work
                walk(cmd, [*prefix, name])

    walk(cli, [])
    return out


@pytest.mark.parametrize("command", [[], *commands()], ids=lambda c: " ".join(c) or "atoll")
def test_help_has_a_description_and_an_example(command: list[str]) -> None:
    res = CliRunner().invoke(cli, [*command, "--help"], prog_name="atoll")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("Usage: atoll " + " ".join(command))
    assert lines[2].strip(), "a one-line description follows the usage line"
    if command[:1] != ["dp"]:
        assert "Example" in res.output
        assert ("atoll " + " ".join(command)).strip() in res.output.split("Example", 1)[1]


def test_core_commands_are_there() -> None:
    names = {" ".join(c) for c in commands()}
    assert {"apply", "get", "delete", "version", "cp", "dp", "demo", "config", "config add-cp"} <= names
    assert {"config use-cp", "config list", "config remove-cp"} <= names
