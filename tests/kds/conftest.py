"""KDS fixtures: real stores (memory, SQLite files) and an in-process global + zones over real gRPC.

``Federation`` runs a ``GlobalKds`` on a loopback port and any number of ``ZoneKds`` clients, each
with its own store, as asyncio tasks; ``stop_zone``/``start_zone`` simulate a zone CP going away and
coming back with the same store. Everything is stopped and every store closed after the test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from atoll.kds import GlobalKds, ZoneKds
from atoll.kds.flows import InsightData
from atoll.store import MemoryStore, SqliteStore, Store
from tests.helpers import await_until, free_port


@dataclass
class Tokens:
    """A fake ``authenticate``: the token of zone Z is ``token-Z`` unless revoked."""

    revoked: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)

    async def __call__(self, zone: str, token: str) -> None:
        self.calls.append(zone)
        if token in self.revoked:
            raise PermissionError("the token is revoked")
        if token != f"token-{zone}":
            raise PermissionError(f"the token is not valid for zone {zone}")


@dataclass
class Zone:
    name: str
    store: Store
    client: ZoneKds
    task: asyncio.Task[None]
    insights: InsightData


class Federation:
    def __init__(self, open_store: Callable[[str], Any], credentials: grpc.ServerCredentials | None = None) -> None:
        self._open_store = open_store
        self.tokens = Tokens()
        self.port = free_port()
        self.credentials = credentials
        self.global_store: Store = MemoryStore()
        self.kds: GlobalKds | None = None
        self._global_task: asyncio.Task[None] | None = None
        self.zones: dict[str, Zone] = {}
        self.stores: list[Store] = []

    async def start_global(self) -> GlobalKds:
        self.global_store = await self._open_store("global")
        self.stores.append(self.global_store)
        return await self._serve_global("global KDS ready")

    async def restart_global(self) -> GlobalKds:
        """Stop global's KDS and start a new one on the same port and store (a global CP restart)."""
        assert self.kds is not None and self._global_task is not None
        await self.kds.stop()
        await asyncio.wait_for(self._global_task, 10)
        return await self._serve_global("global KDS ready again")

    async def _serve_global(self, what: str) -> GlobalKds:
        """Start a ``GlobalKds`` on ``self.port`` over ``self.global_store``; wait until it is ready."""
        self.kds = GlobalKds(
            self.global_store,
            self.tokens,
            host="127.0.0.1",
            port=self.port,
            credentials=self.credentials,
            stop_grace=0.2,
        )
        self._global_task = asyncio.create_task(self.kds.start())
        kds = self.kds
        await await_until(lambda: _true(kds.ready), what=what)
        return kds

    async def start_zone(
        self,
        name: str,
        *,
        token: str | None = None,
        instance_id: str | None = None,
        address: str | None = None,
        ca_file: Path | None = None,
        store: Store | None = None,
    ) -> Zone:
        if store is None:
            old = self.zones.get(name)
            store = old.store if old is not None else await self._open_store(name)
            if old is None:
                self.stores.append(store)
        insights: InsightData = self.zones[name].insights if name in self.zones else []
        client = ZoneKds(
            store,
            zone=name,
            global_address=address or f"grpc://127.0.0.1:{self.port}",
            token=lambda: token or f"token-{name}",
            ca_file=ca_file,
            insights=lambda: list(insights),
            instance_id=instance_id or f"instance-{name}",
            version="test",
            backoff_base=0.05,
            backoff_max=0.3,
            insight_interval=0.05,
        )
        zone = Zone(name, store, client, asyncio.create_task(client.start()), insights)
        self.zones[name] = zone
        return zone

    async def stop_zone(self, name: str) -> None:
        zone = self.zones[name]
        await zone.client.stop()
        await asyncio.wait_for(zone.task, 10)

    async def close(self) -> None:
        for zone in self.zones.values():
            await zone.client.stop()
        for zone in self.zones.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(zone.task, 10)
        if self.kds is not None and self._global_task is not None:
            await self.kds.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._global_task, 10)
        for s in self.stores:
            await s.close()


async def _true(value: bool) -> bool:
    return value


@pytest.fixture(params=["memory", "sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def federation(backend: str, tmp_path: Path, _no_leaked_tasks: None) -> AsyncIterator[Federation]:
    async def open_store(name: str) -> Store:
        if backend == "memory":
            return MemoryStore()
        return await SqliteStore.open(tmp_path / name / "atoll.db")

    fed = Federation(open_store)
    try:
        yield fed
    finally:
        await fed.close()
