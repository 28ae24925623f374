"""Fixtures for end-to-end tests: a running CP, and a factory of agents stopped at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.mesh import Agent, CpProcess
from tests.helpers import HttpBackend


@pytest.fixture
def cp(tmp_path: Path) -> Iterator[CpProcess]:
    c = CpProcess(tmp_path).start()
    try:
        c.put({"type": "Mesh", "name": "default"})
        yield c
    finally:
        c.stop()


AgentFactory = Callable[..., Agent]


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[AgentFactory]:
    started: list[Agent] = []

    def make(
        cp: CpProcess,
        dataplane: dict[str, Any],
        *,
        xds: str = "delta",
        wait: bool = True,
        proxy_type: str = "dataplane",
        token: str | None = None,
    ) -> Agent:
        a = Agent(cp, tmp_path, dataplane, xds=xds, proxy_type=proxy_type, token=token)
        started.append(a)
        return a.start(wait=wait)

    try:
        yield make
    finally:
        for a in started:
            a.stop()


BackendFactory = Callable[[str], HttpBackend]


@pytest.fixture
def backends() -> Iterator[BackendFactory]:
    made: list[HttpBackend] = []

    def make(label: str) -> HttpBackend:
        b = HttpBackend(label)
        made.append(b)
        return b

    try:
        yield make
    finally:
        for b in made:
            try:
                b.stop()
            except Exception:
                pass
