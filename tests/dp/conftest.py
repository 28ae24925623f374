"""Fixtures of the data plane agent tests: a real HTTP backend and the stand-in CP endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from atoll.xds.generate.policies.access_log import access_log_pipe
from tests.dp.support import FakeCp, HttpBackend
from tests.helpers import free_port


@pytest.fixture(autouse=True)
def _no_stale_access_log_pipe() -> Iterator[None]:
    """An agent killed with SIGKILL leaves its access-log FIFO in /tmp: remove the one these tests' proxy made."""
    pipe = Path(access_log_pipe("default", "web-1"))
    existed = pipe.exists()
    yield
    if not existed:
        pipe.unlink(missing_ok=True)


@pytest.fixture
def backend() -> Iterator[HttpBackend]:
    b = HttpBackend(free_port())
    b.start()
    try:
        yield b
    finally:
        b.release_slow.set()
        b.stop()


@pytest.fixture
def fake_cp(backend: HttpBackend) -> Iterator[FakeCp]:
    cp = FakeCp(free_port(), listener_port=free_port(), backend_port=backend.port)
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()
