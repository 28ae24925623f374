"""The stream pump under ADS and KDS: one reader task feeding one writer loop, cancelled in one place.

A gRPC stream is read by one task and written by the loop that owns the ``StreamPump`` (the RPC handler,
or the KDS sender). The reader awaits ``read()`` until the peer ends the stream (``grpc.aio.EOF``), a read
fails, or the pump is ended; each message goes either to ``handler`` — called on the reader task itself,
so a message that needs no write (an ACK) wakes no other task — or, while there is no handler or older
messages still wait, to ``inbox``, in arrival order. Whatever the writer must look at sets ``wake``.

What the writer can rely on:

- ``ended`` becomes true exactly once, and stays: on EOF, on a read error (kept in ``error``), when the
  reader is cancelled, or when ``end()`` is called (the RPC's done callback, a protocol failure). The
  first cause wins. ``wake`` is set whenever ``ended`` changes or a message is queued.
- Helper tasks started with ``spawn`` (a store watch, a poller) live as long as the pump; the first one
  to fail with an exception is reported by ``helper_error()`` (and wakes the writer).
- Leaving ``async with StreamPump(...)`` — normally, by an exception, or by cancellation — cancels the
  reader and every helper first (synchronously), then waits for them to finish; a second cancellation
  during that wait still leaves them cancelled. Code that must run even if the owner is cancelled again
  while cleaning up (counting a stream closed) belongs in a ``try/finally`` inside the ``async with``,
  before any ``await``.

``first_completed`` is the other half of the cancellation story: run coroutines side by side until one
ends, cancel the rest, and return every outcome (the KDS client's two streams and its stop signal).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any

import grpc

Read = Callable[[], Awaitable[Any]]
Handler = Callable[[Any], None]


class StreamPump:
    """A reader task, an inbox and a wake event shared with the writer loop (see the module docstring)."""

    __slots__ = ("_helper_error", "_name", "_read", "_tasks", "ended", "error", "handler", "inbox", "wake")

    def __init__(self, read: Read, *, name: str) -> None:
        self._read = read
        self._name = name
        self._tasks: list[asyncio.Task[Any]] = []
        self._helper_error: BaseException | None = None
        #: Set when there is something for the writer to look at; the writer clears it.
        self.wake = asyncio.Event()
        #: Messages read and not yet handled, oldest first.
        self.inbox: deque[Any] = deque()
        #: Called on the reader task for each message while the inbox is empty; ``None`` queues everything.
        self.handler: Handler | None = None
        self.ended = False
        #: Why the reader stopped, if a read failed (the peer went away, undecodable bytes).
        self.error: BaseException | None = None

    async def __aenter__(self) -> StreamPump:
        self._tasks.append(asyncio.create_task(self._read_loop(), name=f"{self._name}-read"))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        tasks = self._tasks
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run ``coro`` beside the reader until the pump closes; its failure wakes the writer."""
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._helper_done)
        self._tasks.append(task)

    def helper_error(self) -> BaseException | None:
        """The exception of the first helper that failed, if any."""
        return self._helper_error

    def end(self) -> None:
        """The stream is over (the RPC ended, or the writer gives up): stop reading, wake the writer."""
        self._finish(None)

    def _finish(self, error: BaseException | None) -> None:
        if not self.ended:
            self.ended = True
            self.error = error
        self.wake.set()

    def _helper_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None and self._helper_error is None:
            self._helper_error = task.exception()
        self.wake.set()

    async def _read_loop(self) -> None:
        read = self._read
        inbox = self.inbox
        wake = self.wake
        try:
            while not self.ended:
                message = await read()
                if message is grpc.aio.EOF:
                    break
                handler = self.handler
                if handler is None or inbox:
                    inbox.append(message)
                    wake.set()
                else:
                    handler(message)
        except asyncio.CancelledError:
            self._finish(None)
            raise
        except Exception as e:  # the peer went away or sent undecodable bytes
            self._finish(e)
        finally:
            self._finish(None)


async def first_completed(*coros: Coroutine[Any, Any, Any], names: tuple[str, ...] = ()) -> list[object]:
    """Run ``coros`` as tasks until the first one ends, cancel the others, and return every outcome in
    order: a result, or the exception it raised (``CancelledError`` for those cancelled here). If the
    caller is cancelled, every task is cancelled too before the cancellation goes on."""
    tasks = [asyncio.create_task(c, name=names[i] if i < len(names) else None) for i, c in enumerate(coros)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        outcomes: list[object] = await asyncio.gather(*tasks, return_exceptions=True)
    return outcomes


__all__ = ["Handler", "Read", "StreamPump", "first_completed"]
