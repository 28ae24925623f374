"""Service-name inspection: ``GET /meshes/{mesh}/_vips``, a mesh's hostnames and their VIPs here.

The answer is what this control plane serves to the transparent-proxied proxies of the mesh in its
zone (``atoll.proxies.endpoints.ProxyApi.vips``): ``items[]{hostname, vip, ports, service, tags,
origin}``, the ``retired`` names that keep their VIP, the ``cidr`` and the ``problems`` (names that
could not be rendered or allocated). VIPs are allocated per zone: a global control plane answers from
the zones' allocations synced to it (``zones[]{zone, cidr, items[]{hostname, vip, retired}}``: the
VIPs only; ports, services and tags are known where the names are rendered, in each zone). The mesh
must exist (404 naming ``mesh``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from atoll.api import openapi, paths
from atoll.api.deps import ApiInfo, VipsInspector
from atoll.api.errors import HttpError
from atoll.api.wire import require_mesh, respond
from atoll.resources.models.dataplane import ZONE_TAG
from atoll.resources.models.vip_allocation import VIP_ALLOCATION
from atoll.store.protocol import ListFilter, Store


@dataclass(frozen=True, slots=True, kw_only=True)
class VipRoutes:
    """The handler of ``/meshes/{mesh}/_vips``."""

    store: Store
    vips: VipsInspector | None
    info: ApiInfo

    async def mesh_vips(self, request: Request) -> Response:
        mesh = request.path_params["mesh"]
        await require_mesh(self.store, mesh)
        if self.vips is not None:
            return respond(request, self.vips(mesh))
        if self.info.mode == "global":
            return respond(request, {"mesh": mesh, "zones": await self._zones(mesh)})
        raise HttpError(404, "not found", "VIPs are allocated per zone: ask a control plane that serves proxies")

    async def _zones(self, mesh: str) -> list[dict[str, Any]]:
        """The VIP allocations zones synced to global for ``mesh``, by zone."""
        page = await self.store.list(ListFilter(type=VIP_ALLOCATION.name, mesh=mesh))
        zones = []
        for r in page.items:
            entries = [e.model_dump(mode="json", exclude_none=True) for e in r.spec.entries]
            zones.append({"zone": r.meta.labels.get(ZONE_TAG, ""), "cidr": r.spec.cidr, "items": entries})
        return sorted(zones, key=lambda z: str(z["zone"]))


def add_vip_routes(router: APIRouter, routes: VipRoutes) -> None:
    """The service-name inspection route; add it before ``resources.add_fallback_routes``."""
    extra = openapi.operation([openapi.MESH], yaml=True)
    summary = "The mesh's service names (<service>.mesh, VirtualOutbound names) and their VIPs in this zone"
    router.add_api_route(paths.MESH_VIPS, routes.mesh_vips, methods=["GET"], summary=summary, openapi_extra=extra)
