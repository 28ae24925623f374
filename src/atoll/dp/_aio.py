"""Small structured-concurrency helpers for the agent (asyncio).

``wait_first`` runs awaitables as tasks, returns the index of the first one to finish (re-raising its
error) and cancels and awaits the others before returning, so no task outlives the call.
``sleep_or`` sleeps unless an event fires first. ``cancel_and_wait`` cancels tasks and waits for them to end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until they finished; errors other than cancellation are re-raised."""
    pending = [t for t in tasks if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending)
    for t in pending:
        if not t.cancelled() and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]


async def wait_first(*aws: Awaitable[Any]) -> int:
    """Index of the first awaitable to complete; the others are cancelled and awaited."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(t for t in tasks if not t.done())
    first = next(i for i, t in enumerate(tasks) if t in done)
    for t in done:
        t.result()  # re-raise the error of a task that failed
    return first


async def sleep_or(event: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``event`` is set first; True if the event is set."""
    if event.is_set():
        return True
    try:
        await asyncio.wait_for(event.wait(), timeout=max(seconds, 0.0))
    except TimeoutError:
        return False
    return True
