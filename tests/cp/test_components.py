"""The supervisor (stop requests, crashes, hung components, readiness) and the HTTP server component."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from atoll.api.diagnostics import create_diagnostics_app
from atoll.api.metrics import Metrics
from atoll.cp.components import ComponentError, HttpServer, Supervisor
from tests.helpers import await_until, free_port


class Fake:
    """A component driven by the test: it becomes ready when ``make_ready`` is set and fails on ``crash``."""

    def __init__(self, name: str, *, ready_at_once: bool = True, ignore_stop: bool = False) -> None:
        self.name = name
        self.ready = False
        self.make_ready = asyncio.Event()
        if ready_at_once:
            self.make_ready.set()
        self.crash = asyncio.Event()
        self.finish = asyncio.Event()
        self._stop = asyncio.Event()
        self.ignore_stop = ignore_stop
        self.stopped = False
        self.cancelled = False

    async def start(self) -> None:
        try:
            helpers: list[asyncio.Task[object]] = [asyncio.create_task(self._become_ready())]
            helpers += [asyncio.create_task(e.wait()) for e in (self._stop, self.crash, self.finish)]
            try:
                await asyncio.wait(helpers[1:], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in helpers:
                    t.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
            if self.crash.is_set():
                raise RuntimeError(f"{self.name} blew up")
            if self.ignore_stop and not self.finish.is_set():
                await asyncio.Event().wait()  # hang: only cancellation ends this
            self.stopped = True
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            self.ready = False

    async def _become_ready(self) -> None:
        await self.make_ready.wait()
        self.ready = True

    async def stop(self) -> None:
        self._stop.set()


async def test_stop_request_stops_every_component() -> None:
    a, b = Fake("a"), Fake("b")
    sup = Supervisor([a, b], stop_timeout=5)
    assert not sup.ready
    task = asyncio.create_task(sup.run())
    await await_until(lambda: _true(sup.ready), what="supervisor ready")
    sup.request_stop("test says stop")
    assert not sup.ready  # not ready from the moment a stop is requested
    outcome = await task
    assert (outcome.reason, outcome.failed, outcome.exit_code) == ("test says stop", None, 0)
    assert a.stopped and b.stopped
    assert not sup.ready


async def test_one_crash_stops_the_others_and_names_the_culprit() -> None:
    a, b, c = Fake("a"), Fake("b"), Fake("c")
    sup = Supervisor([a, b, c], stop_timeout=5)
    task = asyncio.create_task(sup.run())
    await await_until(lambda: _true(sup.ready), what="supervisor ready")
    b.crash.set()
    outcome = await task
    assert outcome.failed == "b"
    assert outcome.reason == "component b failed: b blew up"
    assert outcome.exit_code == 1
    assert a.stopped and c.stopped and not b.stopped


async def test_a_component_that_returns_on_its_own_stops_the_process() -> None:
    a, b = Fake("a"), Fake("b")
    sup = Supervisor([a, b], stop_timeout=5)
    task = asyncio.create_task(sup.run())
    await await_until(lambda: _true(sup.ready), what="supervisor ready")
    a.finish.set()
    outcome = await task
    assert (outcome.failed, outcome.reason) == ("a", "component a stopped on its own")
    assert b.stopped


async def test_a_hung_component_is_cancelled_after_the_deadline() -> None:
    good, hung = Fake("good"), Fake("hung", ignore_stop=True)
    sup = Supervisor([good, hung], stop_timeout=0.2)
    task = asyncio.create_task(sup.run())
    await await_until(lambda: _true(sup.ready), what="supervisor ready")
    sup.request_stop()
    outcome = await asyncio.wait_for(task, 5)
    assert outcome.exit_code == 0
    assert good.stopped
    assert hung.cancelled and not hung.stopped


async def test_ready_only_when_every_component_is_ready() -> None:
    a, slow = Fake("a"), Fake("slow", ready_at_once=False)
    sup = Supervisor([a, slow], stop_timeout=5)
    task = asyncio.create_task(sup.run())
    await await_until(lambda: _true(a.ready), what="a ready")
    assert not sup.ready
    slow.make_ready.set()
    await await_until(lambda: _true(sup.ready), what="supervisor ready")
    sup.request_stop()
    await task
    assert not sup.ready


async def test_stop_requested_before_run_returns_promptly() -> None:
    a = Fake("a")
    sup = Supervisor([a], stop_timeout=5)
    sup.request_stop("early")
    outcome = await asyncio.wait_for(sup.run(), 5)
    assert outcome.reason == "early" and outcome.exit_code == 0


async def test_http_server_is_ready_once_listening_and_frees_its_port() -> None:
    port = free_port()
    metrics = Metrics()
    slow = Fake("slow", ready_at_once=False)
    sup = Supervisor(stop_timeout=5)
    server = HttpServer("diagnostics", create_diagnostics_app(lambda: sup.ready, metrics), "127.0.0.1", port)
    sup.add(server)
    sup.add(slow)
    task = asyncio.create_task(sup.run())
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
        await await_until(lambda: _true(server.ready), what="server listening")
        r = await c.get("/ready")
        assert r.status_code == 503  # the diagnostics server listens, another component is not ready
        assert (await c.get("/healthy")).status_code == 200
        slow.make_ready.set()
        await await_until(lambda: _status(c, "/ready", 200), what="/ready 200")
        sup.request_stop()
        outcome = await task
    assert outcome.exit_code == 0
    assert not server.ready
    with socket.socket() as s:  # nothing listens any more, and the port can be bound again
        with pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", port))
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


async def test_http_server_on_a_busy_port_fails_with_the_reason() -> None:
    port = free_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen(1)
        server = HttpServer("api", create_diagnostics_app(lambda: True, Metrics()), "127.0.0.1", port)
        with pytest.raises(ComponentError, match=rf"cannot listen on 127.0.0.1:{port}: Address already in use"):
            await server.start()
        other = Fake("other")
        sup = Supervisor([other, HttpServer("api", create_diagnostics_app(lambda: True, Metrics()), "127.0.0.1", port)])
        outcome = await asyncio.wait_for(sup.run(), 10)
    assert outcome.failed == "api"
    assert "Address already in use" in outcome.reason
    assert other.stopped


async def _true(value: bool) -> bool:
    return value


async def _status(c: httpx.AsyncClient, path: str, status: int) -> bool:
    return (await c.get(path)).status_code == status
