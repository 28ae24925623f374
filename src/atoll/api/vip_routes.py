"""Service-name inspection: ``GET /meshes/{mesh}/_vips``, a mesh's hostnames and their VIPs here.

The answer is what this control plane serves to the transparent-proxied proxies of the mesh in its
zone (``atoll.proxies.endpoints.ProxyApi.vips``): ``items[]{hostname, vip, ports, service, tags,
origin}``, the ``retired`` names that keep their VIP, the ``cidr`` and the ``problems`` (names that
could not be rendered or allocated). VIPs are allocated per zone, so a global control plane has none
to show: it answers 404 saying to ask a zone's control plane. The mesh must exist (404 naming ``mesh``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from atoll.api import openapi, paths
from atoll.api.deps import ApiInfo, VipsInspector
from atoll.api.errors import HttpError
from atoll.api.wire import require_mesh, respond
from atoll.store.protocol import Store


@dataclass(frozen=True, slots=True, kw_only=True)
class VipRoutes:
    """The handler of ``/meshes/{mesh}/_vips``."""

    store: Store
    vips: VipsInspector | None
    info: ApiInfo

    async def mesh_vips(self, request: Request) -> Response:
        mesh = request.path_params["mesh"]
        await require_mesh(self.store, mesh)
        if self.vips is None:
            where = "each zone's control plane" if self.info.mode == "global" else "a control plane that serves proxies"
            raise HttpError(404, "not found", f"VIPs are allocated per zone: ask {where} (this one allocates none)")
        return respond(request, self.vips(mesh))


def add_vip_routes(router: APIRouter, routes: VipRoutes) -> None:
    """The service-name inspection route; add it before ``resources.add_fallback_routes``."""
    extra = openapi.operation([openapi.MESH], yaml=True)
    summary = "The mesh's service names (<service>.mesh, VirtualOutbound names) and their VIPs in this zone"
    router.add_api_route(paths.MESH_VIPS, routes.mesh_vips, methods=["GET"], summary=summary, openapi_extra=extra)
