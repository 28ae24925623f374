"""The global control plane as the CA authority of a multi-zone deployment.

Zones never create a mesh CA: they use the one global creates, synced to them over KDS as Secrets, so
an identity issued in one zone verifies in every other. ``CaAuthority`` is the global CP's component
that makes this happen: it ensures the CA of every Mesh with a builtin mTLS backend at start, then on
every Mesh change it sees in the store (event driven). A standalone CP's proxy reconciler ensures CAs
itself.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from atoll.resources import Resource
from atoll.security.mesh_ca import CaManager
from atoll.store import EventKind, ListFilter, Store, list_all

log = logging.getLogger(__name__)


class CaAuthority:
    def __init__(self, store: Store, cas: CaManager | None = None) -> None:
        self._store = store
        self._cas = cas or CaManager(store)
        self._ready = False
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return "ca-authority"

    @property
    def ready(self) -> bool:
        return self._ready

    async def start(self) -> None:
        self._task = asyncio.current_task()
        sub = self._store.watch()
        try:
            for mesh in await list_all(self._store, ListFilter(type="Mesh"), page_size=500):
                await self._ensure(mesh)
            self._ready = True
            async for ev in sub:
                if ev.resource.type == "Mesh" and ev.kind is not EventKind.DELETED:
                    await self._ensure(ev.resource)
        except asyncio.CancelledError:
            pass
        finally:
            sub.close()
            self._ready = False

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _ensure(self, mesh: Resource[Any]) -> None:
        try:
            if await self._cas.ensure_ca(mesh) is not None:
                log.debug("mesh %s has its CA", mesh.name)
        except Exception:
            log.exception("cannot create the CA of mesh %s", mesh.name)
