"""The ADS component of a zone (or standalone) CP: ``atoll.proxies.ProxyService`` run under the supervisor.

``start()`` runs the service until ``stop()``; ``ready`` turns true once the gRPC server listens and
the reconciler has loaded the store (so ``/ready`` means proxies can be served).
"""

from __future__ import annotations

import asyncio
import contextlib

from atoll.proxies.service import ProxyService


class XdsComponent:
    def __init__(self, service: ProxyService) -> None:
        self.service = service
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def name(self) -> str:
        return "xds"

    @property
    def ready(self) -> bool:
        return self.service.ready.is_set()

    async def start(self) -> None:
        if self._stopping:
            return
        self._task = asyncio.current_task()
        with contextlib.suppress(asyncio.CancelledError):
            await self.service.run()
        if not self._stopping:
            raise RuntimeError("the ADS server stopped on its own")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
