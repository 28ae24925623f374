"""Fixtures of the data plane agent tests: a real HTTP backend and the stand-in CP endpoints."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dp.support import FakeCp, HttpBackend
from tests.helpers import free_port


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
