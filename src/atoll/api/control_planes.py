"""``GET /control-planes``: the CP instances sharing this one's store (HA), from its instance registry.

The answer is ``atoll.cp.instances.InstanceRegistry.listing()``: the role (``global``, ``zone/<zone>``
or ``standalone``), the leader's instance id, and one item per instance (address, version, start
time, uptime, heartbeat age, alive, leader, term, how many proxies and zones it holds). It is read
from memory (the registry's last read of the store), so it answers even while the store does not.
A CP built without a registry answers 404.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from atoll.api import openapi, paths
from atoll.api.errors import HttpError

ControlPlanes = Callable[[], dict[str, Any]]
"""The listing of ``GET /control-planes``."""


def add_control_plane_routes(router: APIRouter, listing: ControlPlanes | None) -> None:
    async def control_planes() -> JSONResponse:
        if listing is None:
            raise HttpError(404, "not found", "this control plane keeps no instance registry")
        return JSONResponse(listing())

    router.add_api_route(
        paths.CONTROL_PLANES,
        control_planes,
        methods=["GET"],
        summary="The control plane instances sharing this one's store, and which one leads",
        openapi_extra=openapi.operation([]),
    )
