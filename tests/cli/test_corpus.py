"""Kuma's documentation examples through `atoll apply` against a real control plane.

Every file of ``shared/compat/kuma-docs`` applies; every file of ``invalid/`` is refused with errors
that name a field, and changes nothing. The CLI runs in-process here (click's runner: 100 process
starts would dominate the suite); the control plane is a real process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from atoll.cli.client import Client
from atoll.cli.main import cli
from atoll.errors import InvalidInput
from atoll.resources import all_types
from tests.cli.conftest import Cp
from tests.helpers import REPO

CORPUS = REPO.parent / "shared" / "compat" / "kuma-docs"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="compat corpus not found")


@pytest.fixture
def run(cp: Cp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("ATOLL_CONFIG", str(tmp_path / "client.yaml"))
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(cli, ["--cp", cp.url, *args], prog_name="atoll")

    yield invoke


def snapshot(url: str) -> dict[str, list[dict[str, Any]]]:
    with Client(url) as c:
        return {rt.name: c.list(rt, None) for rt in all_types()}


def test_valid_examples_apply_and_invalid_ones_change_nothing(cp: Cp, run: Any, tmp_path: Path) -> None:
    meshes = tmp_path / "meshes.yaml"
    meshes.write_text("type: Mesh\nname: default\n---\ntype: Mesh\nname: my-mesh\n")
    assert run("apply", "-f", str(meshes)).exit_code == 0
    files = sorted(CORPUS.glob("*.yaml"))
    assert len(files) > 50
    failed = {}
    for f in files:
        res = run("apply", "-f", str(f))
        if res.exit_code != 0:
            failed[f.name] = repr(res.exception)
    assert failed == {}

    before = snapshot(cp.url)
    invalid = sorted((CORPUS / "invalid").glob("*.yaml"))
    assert invalid
    for f in invalid:
        res = run("apply", "-f", str(f))
        assert res.exit_code == 1, f"{f.name} was accepted: {res.output}"
        assert isinstance(res.exception, InvalidInput), f"{f.name}: {res.exception!r}"
        assert all(e.path for e in res.exception.errors), f"{f.name}: an error names no field: {res.exception}"
    assert snapshot(cp.url) == before
