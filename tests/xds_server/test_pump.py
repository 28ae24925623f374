"""The stream pump under ADS and KDS: reading, handing off, and every way a stream ends or is cancelled."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from atoll.xds.pump import StreamPump, first_completed
from tests.helpers import await_until


class FakeStream:
    """``read()`` returns what the test puts: a message, ``grpc.aio.EOF``, or an exception to raise."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.reads = 0

    def put(self, item: Any) -> None:
        self.queue.put_nowait(item)

    async def read(self) -> Any:
        item = await self.queue.get()
        self.reads += 1
        if isinstance(item, BaseException):
            raise item
        return item


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_peer_closes_after_messages_queued_in_order() -> None:
    stream = FakeStream()
    async with StreamPump(stream.read, name="t") as pump:
        for m in ("a", "b", "c", grpc.aio.EOF):
            stream.put(m)
        await asyncio.wait_for(pump.wake.wait(), 5)
        await await_until(lambda: pump.ended)
        assert list(pump.inbox) == ["a", "b", "c"]
        assert pump.error is None and pump.wake.is_set()


async def test_handler_runs_on_the_reader_only_while_the_inbox_is_empty() -> None:
    stream = FakeStream()
    handled: list[tuple[str, asyncio.Task[Any] | None]] = []
    async with StreamPump(stream.read, name="t") as pump:
        stream.put("early")
        await await_until(lambda: len(pump.inbox) == 1)
        pump.handler = lambda m: handled.append((m, asyncio.current_task()))
        stream.put("queued behind early")  # the inbox is not empty: order is kept
        await await_until(lambda: len(pump.inbox) == 2)
        assert handled == []
        assert [pump.inbox.popleft(), pump.inbox.popleft()] == ["early", "queued behind early"]
        pump.wake.clear()
        stream.put("ack")
        await await_until(lambda: len(handled) == 1)
        assert handled[0][0] == "ack"
        assert handled[0][1] is not None and handled[0][1].get_name() == "t-read"
        assert not pump.wake.is_set()  # a handled message wakes nobody by itself
        assert not pump.inbox


async def test_reader_error_ends_the_pump_with_the_error() -> None:
    stream = FakeStream()
    boom = ConnectionResetError("peer went away")
    async with StreamPump(stream.read, name="t") as pump:
        stream.put("x")
        stream.put(boom)
        await await_until(lambda: pump.ended)
        assert pump.error is boom and list(pump.inbox) == ["x"] and pump.wake.is_set()


async def test_end_stops_reading_and_the_first_cause_wins() -> None:
    stream = FakeStream()
    async with StreamPump(stream.read, name="t") as pump:
        pump.handler = lambda m: pump.end() if m == "stop" else None
        stream.put("stop")
        stream.put("never read")
        await await_until(lambda: pump.ended)
        await settle()
        assert stream.reads == 1 and pump.error is None
        pump._finish(RuntimeError("later"))  # a later cause does not replace the first
        assert pump.error is None


async def test_local_cancel_cancels_the_reader_blocked_in_read() -> None:
    stream = FakeStream()
    async with StreamPump(stream.read, name="t") as pump:
        await settle()
        reader = pump._tasks[0]
        assert not reader.done()
    assert reader.cancelled() and pump.ended and pump.error is None


async def test_owner_cancelled_while_writing_still_cancels_the_reader() -> None:
    stream = FakeStream()
    started = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []

    async def owner() -> None:
        async with StreamPump(stream.read, name="t") as pump:
            tasks.extend(pump._tasks)
            started.set()
            await asyncio.Event().wait()  # a write that never completes

    task = asyncio.create_task(owner())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert tasks[0].cancelled()


async def test_cancellation_during_cleanup_keeps_bookkeeping_and_cancels_the_reader() -> None:
    release = asyncio.Event()
    in_cleanup = asyncio.Event()

    async def slow_to_stop() -> Any:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            in_cleanup.set()
            await release.wait()  # the reader takes a while to finish after being cancelled
            raise

    closed: list[str] = []
    reader: list[asyncio.Task[Any]] = []

    async def owner() -> None:
        async with StreamPump(slow_to_stop, name="t") as pump:
            reader.extend(pump._tasks)
            try:
                await asyncio.Event().wait()
            finally:
                closed.append("bookkeeping")  # synchronous, before the pump awaits its reader

    task = asyncio.create_task(owner())
    await await_until(lambda: bool(reader))
    await settle()
    task.cancel()
    await asyncio.wait_for(in_cleanup.wait(), 5)
    assert closed == ["bookkeeping"] and not task.done()
    task.cancel()  # cancelled again while waiting for the reader
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reader[0].cancelling() and not reader[0].done()
    release.set()
    await asyncio.wait(reader, timeout=5)
    assert reader[0].cancelled()


async def test_a_failing_helper_wakes_the_writer_and_helpers_stop_with_the_pump() -> None:
    stream = FakeStream()
    forever_started = asyncio.Event()

    async def forever() -> None:
        forever_started.set()
        await asyncio.Event().wait()

    async def failing() -> None:
        raise ValueError("watch broke")

    async with StreamPump(stream.read, name="t") as pump:
        pump.spawn(forever(), "t-forever")
        await asyncio.wait_for(forever_started.wait(), 5)
        assert pump.helper_error() is None
        pump.wake.clear()
        pump.spawn(failing(), "t-failing")
        await asyncio.wait_for(pump.wake.wait(), 5)
        error = pump.helper_error()
        assert isinstance(error, ValueError) and str(error) == "watch broke"
        helpers = pump._tasks[1:]
    assert helpers[0].cancelled() and helpers[1].done()
    assert pump.ended and pump.error is None


async def test_first_completed_cancels_the_rest_and_returns_every_outcome() -> None:
    async def quick() -> str:
        return "done"

    async def slow() -> str:
        await asyncio.Event().wait()
        return "never"

    async def broken() -> str:
        await asyncio.sleep(0)
        raise KeyError("x")

    outcomes = await first_completed(slow(), quick(), names=("slow", "quick"))
    assert isinstance(outcomes[0], asyncio.CancelledError) and outcomes[1] == "done"
    outcomes = await first_completed(broken(), slow())
    assert isinstance(outcomes[0], KeyError) and isinstance(outcomes[1], asyncio.CancelledError)


async def test_first_completed_cancelled_by_its_caller_cancels_every_task() -> None:
    started = asyncio.Event()
    seen: list[asyncio.Task[Any]] = []

    async def slow() -> None:
        seen.append(asyncio.current_task())  # type: ignore[arg-type]
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(first_completed(slow(), slow()))
    await asyncio.wait_for(started.wait(), 5)
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(seen) == 2 and all(t.cancelled() for t in seen)
