"""Fixtures shared by every suite. An async test that leaves asyncio tasks running fails; under CI
(``CI`` set) a test skipped for a missing precondition fails (``tests/ci_skips.py``)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator

import pytest

pytest_plugins = ["tests.ci_skips"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fn = getattr(item, "function", None)
        if fn is not None and inspect.iscoroutinefunction(fn) and isinstance(item, pytest.Function):
            item.fixturenames.append("_no_leaked_tasks")


@pytest.fixture
async def _no_leaked_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    leaked: list[asyncio.Task[object]] = []
    for _ in range(50):  # give cancelled tasks a few turns of the loop to finish
        leaked = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()]
        if not leaked:
            return
        await asyncio.sleep(0.01)
    names = ", ".join(t.get_name() + ":" + repr(t.get_coro()) for t in leaked)
    for t in leaked:
        t.cancel()
    pytest.fail(f"test leaked asyncio tasks: {names}")
