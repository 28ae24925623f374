"""The Envoy supervisor with a real Envoy from a static bootstrap and real HTTP through it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from atoll.dp import EnvoyOptions, EnvoySupervisor
from atoll.dp.envoy import active_connections, admin_ready, describe_exit
from tests.dp.support import HttpBackend, alive, static_bootstrap, until
from tests.helpers import free_port

pytestmark = pytest.mark.envoy


class Running:
    def __init__(self, sup: EnvoySupervisor, task: asyncio.Task[None], listener_port: int) -> None:
        self.sup = sup
        self.task = task
        self.listener = f"http://127.0.0.1:{listener_port}"
        self.pids: list[int] = []

    async def get(self, path: str = "/") -> httpx.Response:
        async with httpx.AsyncClient(trust_env=False, timeout=10) as c:
            return await c.get(self.listener + path)


@pytest.fixture
async def running(tmp_path: Path, backend: HttpBackend) -> AsyncIterator[Running]:
    admin, listener = free_port(), free_port()
    boot = tmp_path / "bootstrap.json"
    boot.write_text(json.dumps(static_bootstrap(admin_port=admin, listener_port=listener, backend_port=backend.port)))
    ready_pids: list[int] = []
    sup = EnvoySupervisor(
        EnvoyOptions(bootstrap_path=boot, admin_port=admin, drain_time=10.0, restart_initial=0.2),
        on_ready=ready_pids.append,
    )
    task = asyncio.create_task(sup.run())
    r = Running(sup, task, listener)
    r.pids = ready_pids
    try:
        yield r
    finally:
        backend.release_slow.set()
        if not task.done():
            task.cancel()
        await asyncio.wait([task])
        for pid in ready_pids:  # never leave an Envoy behind, even when the test failed
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


async def test_ready_serves_restarts_after_kill_and_stops(running: Running) -> None:
    sup = running.sup
    await until(lambda: sup.ready, "envoy ready")
    first = sup.pid
    assert first is not None and running.pids == [first]
    assert (await running.get()).text == "backend=A"

    os.kill(first, signal.SIGKILL)
    await until(lambda: sup.ready and sup.pid not in (None, first), "envoy restarted and ready")
    second = sup.pid
    assert second is not None and running.pids == [first, second]
    assert sup.restarts == 1 and sup.starts == 2
    assert not alive(first)
    assert (await running.get()).text == "backend=A"

    sup.request_stop()
    await asyncio.wait_for(running.task, 10)
    assert running.task.exception() is None
    assert not alive(second)
    assert sup.pid is None and not sup.ready


async def test_stop_drains_an_in_flight_request(running: Running, backend: HttpBackend) -> None:
    sup = running.sup
    await until(lambda: sup.ready, "envoy ready")
    pid = sup.pid
    assert pid is not None
    admin = sup.options.admin_url
    pending = asyncio.create_task(running.get("/slow"))
    try:
        await until(backend.slow_started.is_set, "request reached the backend")
        sup.request_stop()
        await until(lambda: sup.draining, "drain started")
        async with httpx.AsyncClient(trust_env=False, timeout=2) as http:
            # Envoy is still up, draining, with the request's connection open
            assert await active_connections(http, admin) == 1
            assert alive(pid)
            backend.release_slow.set()
            resp = await asyncio.wait_for(pending, 10)
        assert resp.status_code == 200 and resp.text == "backend=A"
        assert resp.headers.get("connection") == "close"  # Envoy asks the client to go away while draining
        await asyncio.wait_for(running.task, 10)  # stops once the connection is gone, well before the drain time
        assert not alive(pid)
    finally:
        backend.release_slow.set()
        await asyncio.wait([pending])


async def test_cancelling_run_terminates_envoy(running: Running) -> None:
    await until(lambda: running.sup.ready, "envoy ready")
    pid = running.sup.pid
    assert pid is not None
    running.task.cancel()
    await asyncio.wait([running.task])
    assert running.task.cancelled()
    assert not alive(pid)
    async with httpx.AsyncClient(trust_env=False, timeout=1) as http:
        assert not await admin_ready(http, running.sup.options.admin_url)


async def test_bad_bootstrap_is_restarted_with_backoff(tmp_path: Path) -> None:
    boot = tmp_path / "bootstrap.json"
    boot.write_text(json.dumps({"static_resources": {"clusters": [{"name": "x", "type": "NOPE"}]}}))
    exits: list[int | None] = []
    sup = EnvoySupervisor(
        EnvoyOptions(bootstrap_path=boot, admin_port=free_port(), restart_initial=0.05, restart_max=0.1),
        on_exit=lambda pid, code: exits.append(code),
    )
    task = asyncio.create_task(sup.run())
    try:
        await until(lambda: len(exits) >= 3, "three failed starts", within=20)
        assert set(exits) == {1} and not sup.ready
    finally:
        sup.request_stop()
        await asyncio.wait_for(task, 10)


def test_describe_exit() -> None:
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(-9) == "signal SIGKILL"
