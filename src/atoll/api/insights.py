"""Inspection routes: resources with the live state of their proxies or zones, and a proxy's config.

- ``GET /meshes/{mesh}/dataplanes+insights``: a page of the mesh's Dataplanes, each with a
  ``dataplaneInsight`` from the proxies this CP serves, else from ``dataplane_insights`` (a global
  CP's synced insights), else ``{"online": false}``.
- ``GET /zones+insights``: Zones with a ``zoneInsight`` (``zone_insights``; offline without one).
- ``GET /zoneegresses+insights``: ZoneEgresses with a ``zoneEgressInsight``.
- ``GET /meshes/{mesh}/dataplanes/{name}/served-xds`` (admin: it holds the proxy's private key): the
  xDS configuration this CP serves the proxy. ``.../_config`` (Kuma's path, ``kumactl inspect dataplane
  NAME --type config``, admin too) answers the same configuration in Kuma's shape, ``{"xds": ...}``;
  Kuma's ``shadow=true`` and ``include=diff`` are refused naming the parameter (Atoll has no shadow
  policies and keeps no older configuration to diff against).
- ``GET .../xds`` (Kuma's path; ``.../config-dump`` is Atoll's older spelling) (admin), ``.../stats``
  and ``.../clusters``: Envoy's own config dump (with EDS only if ``include_eds=true``, as Kuma's),
  stats and clusters (JSON), fetched through the proxy's agent.

The Dataplane must exist (404), and its proxy be served here (404).

Lists take the paging of every list (``atoll.api.wire.PageRequest``) and answer the same page shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from atoll.api import openapi, paths
from atoll.api.deps import DataplaneInsights, ProxyEndpoints, ZoneInsights
from atoll.api.errors import HttpError
from atoll.api.wire import Access, PageRequest, list_page, page_answer, require_mesh, respond
from atoll.errors import FieldError, InvalidInput
from atoll.resources.codec import encode
from atoll.store.protocol import Store


def offline() -> dict[str, Any]:
    """The insight of a proxy or zone nothing here knows of."""
    return {"online": False}


def dataplane_insight(
    proxies: ProxyEndpoints | None, synced: DataplaneInsights | None, mesh: str, name: str
) -> dict[str, Any]:
    """The ``dataplaneInsight`` of ``mesh/name``: from the proxies this CP serves, else from a global
    CP's synced insights, else offline (what ``dataplanes+insights`` and the GUI show)."""
    insight = proxies.insight(mesh, name) if proxies is not None else None
    if insight is None and synced is not None:
        insight = synced(mesh, name)
    return insight if insight is not None else offline()


@dataclass(frozen=True, slots=True, kw_only=True)
class InsightRoutes:
    """The handlers of the inspection routes."""

    store: Store
    access: Access
    proxies: ProxyEndpoints | None
    dataplane_insights: DataplaneInsights | None
    zone_insights: ZoneInsights | None
    no_proxies: str  # why the proxies' views answer 404 here

    async def dataplanes_insights(self, request: Request) -> Response:
        mesh = request.path_params["mesh"]
        paging = PageRequest.of(request)
        await require_mesh(self.store, mesh)
        page = await list_page(self.store, paging, "Dataplane", mesh)
        items = [{**encode(r), "dataplaneInsight": self._dataplane_insight(mesh, r.name)} for r in page.items]
        return page_answer(request, paging, page, items)

    def _dataplane_insight(self, mesh: str, name: str) -> dict[str, Any]:
        return dataplane_insight(self.proxies, self.dataplane_insights, mesh, name)

    async def zones_insights(self, request: Request) -> Response:
        paging = PageRequest.of(request)
        page = await list_page(self.store, paging, "Zone")
        items = []
        for r in page.items:
            insight = await self.zone_insights(r.name) if self.zone_insights is not None else offline()
            items.append({"type": "Zone", "name": r.name, "enabled": r.spec.is_enabled, "zoneInsight": insight})
        return page_answer(request, paging, page, items)

    async def zone_egresses_insights(self, request: Request) -> Response:
        paging = PageRequest.of(request)
        page = await list_page(self.store, paging, "ZoneEgress")
        proxies = self.proxies
        items = [
            {**encode(r), "zoneEgressInsight": proxies.egress_insight(r.name) if proxies is not None else offline()}
            for r in page.items
        ]
        return page_answer(request, paging, page, items)

    async def kuma_dataplane_config(self, request: Request) -> Response:
        q = request.query_params
        errors = []
        if q.get("shadow", "false").lower() not in ("false", "true"):
            errors.append(FieldError("shadow", "must be true or false"))
        elif q.get("shadow", "false").lower() == "true":
            errors.append(FieldError("shadow", "not supported: Atoll has no shadow policies (kuma.io/effect: shadow)"))
        if q.getlist("include"):
            errors.append(FieldError("include", "not supported: Atoll keeps no older configuration to diff against"))
        if errors:
            raise InvalidInput(errors, title="invalid query")
        return respond(request, {"xds": await self._served_xds(request)})

    async def dataplane_served_xds(self, request: Request) -> Response:
        return respond(request, await self._served_xds(request))

    async def _served_xds(self, request: Request) -> dict[str, Any]:
        mesh, name = await self._dataplane(request, "the served configuration holds the proxy's private key")
        config = self.proxies.xds_config(mesh, name) if self.proxies is not None else None
        if config is None:
            raise HttpError(404, "not found", f"proxy {mesh}.{name} is not connected to this control plane")
        return config

    async def dataplane_config_dump(self, request: Request) -> Response:
        raw = request.query_params.get("include_eds", "false").lower()
        if raw not in ("true", "false"):
            raise InvalidInput(FieldError("include_eds", "must be true or false"), title="invalid query")
        mesh, name = await self._dataplane(request, "a config dump holds the proxy's secrets")
        path = "/config_dump?include_eds" if raw == "true" else "/config_dump"
        return JSONResponse(await self._served().admin(mesh, name, path))

    async def dataplane_clusters(self, request: Request) -> Response:
        mesh, name = await self._dataplane(request, None)
        return JSONResponse(await self._served().admin(mesh, name, "/clusters?format=json"))

    async def dataplane_stats(self, request: Request) -> Response:
        mesh, name = await self._dataplane(request, None)
        return JSONResponse(await self._served().admin(mesh, name, "/stats?format=json"))

    async def _dataplane(self, request: Request, admin_only: str | None) -> tuple[str, str]:
        """The path's mesh and name, once the client may see them (``admin_only``: why not, if not
        an admin) and the Dataplane exists."""
        mesh, name = request.path_params["mesh"], request.path_params["name"]
        if admin_only is not None:
            self.access.require_admin(request, admin_only)
        await self.store.get("Dataplane", name, mesh)
        return mesh, name

    def _served(self) -> ProxyEndpoints:
        if self.proxies is None:
            raise HttpError(404, "not found", self.no_proxies)
        return self.proxies


def add_insight_routes(router: APIRouter, routes: InsightRoutes) -> None:
    """The inspection routes; add them before ``resources.add_fallback_routes``, whose routes would
    answer ``/meshes/{mesh}/dataplanes+insights`` as an unknown type."""
    in_mesh = openapi.operation([openapi.MESH, *openapi.LIST_QUERY], yaml=True)
    at_root = openapi.operation(openapi.LIST_QUERY, yaml=True)
    proxy = [openapi.MESH, openapi.name_param("Dataplane")]
    for path, endpoint, extra, summary in (
        (
            paths.DATAPLANES_INSIGHTS,
            routes.dataplanes_insights,
            in_mesh,
            "Dataplanes of a mesh with their proxies' xDS status",
        ),
        (
            paths.DATAPLANE_SERVED_XDS,
            routes.dataplane_served_xds,
            openapi.operation(proxy, yaml=True),
            "The xDS configuration the CP serves to one proxy",
        ),
        (
            paths.KUMA_DATAPLANE_CONFIG,
            routes.kuma_dataplane_config,
            openapi.operation([*proxy, *openapi.KUMA_CONFIG_QUERY], yaml=True),
            'The xDS configuration the CP serves to one proxy, as {"xds": ...} (Kuma\'s path)',
        ),
        (
            paths.DATAPLANE_XDS,
            routes.dataplane_config_dump,
            openapi.operation([*proxy, openapi.INCLUDE_EDS]),
            "Envoy's own config dump of one proxy, through its agent (Kuma's path)",
        ),
        (
            paths.DATAPLANE_CONFIG_DUMP,
            routes.dataplane_config_dump,
            openapi.operation([*proxy, openapi.INCLUDE_EDS]),
            "Envoy's own config dump of one proxy, through its agent (Atoll's older spelling of .../xds)",
        ),
        (
            paths.DATAPLANE_CLUSTERS,
            routes.dataplane_clusters,
            openapi.operation(proxy),
            "Envoy's clusters of one proxy (JSON), through its agent",
        ),
        (
            paths.DATAPLANE_STATS,
            routes.dataplane_stats,
            openapi.operation(proxy),
            "Envoy's stats of one proxy (JSON), through its agent",
        ),
        (
            paths.ZONE_EGRESSES_INSIGHTS,
            routes.zone_egresses_insights,
            at_root,
            "Zone egresses with their proxy's state and what they route",
        ),
        (
            paths.ZONES_INSIGHTS,
            routes.zones_insights,
            at_root,
            "Zones with their connection state (global control plane)",
        ),
    ):
        router.add_api_route(path, endpoint, methods=["GET"], summary=summary, openapi_extra=extra)
