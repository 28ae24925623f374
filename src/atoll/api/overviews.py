"""Kuma's read-only overview and insight routes, the ones ``kumactl inspect`` and Kuma's GUI read.

- ``GET /meshes/{mesh}/dataplanes/_overview`` (and ``/{name}/_overview``): ``DataplaneOverview``
  items, the Dataplane's spec under ``dataplane``, its proxy's state under ``dataplaneInsight``.
  Filters as Kuma's: ``tag=key:value`` (repeatable; every one must match an inbound's or the
  gateway's tags), ``gateway=true|false|delegated|builtin``, ``ingress=true|false`` (Atoll keeps
  zone ingresses as ZoneIngress resources, so ``ingress=true`` matches none), ``name`` prefix.
- ``GET /meshes/{mesh}/dataplane-insights`` (and ``/{name}``): Kuma's ``DataplaneInsight`` of each
  Dataplane (its ``subscriptions``). Atoll's own stored ``DataplaneInsight`` type (a global CP's
  copies of the zones' insights, in Atoll's shape) stays at ``/meshes/{mesh}/dataplaneinsights``.
- ``GET /mesh-insights`` (and ``/{name}``): ``MeshInsight`` per mesh: proxies by state, type and
  Envoy version, resource and policy counts, services.
- ``GET /meshes/{mesh}/service-insights`` (and ``/{name}``): ``ServiceInsight`` per service.
- ``GET /zones/_overview``, ``/zoneingresses/_overview``, ``/zoneegresses/_overview`` (and
  ``/{name}/_overview``): ``ZoneOverview`` (``zone``, ``zoneInsight``), ``ZoneIngressOverview``
  (``zoneIngress``, ``zoneIngressInsight``), ``ZoneEgressOverview`` (``zoneEgress``,
  ``zoneEgressInsight``).

The shapes are built by ``atoll.api.kuma_shapes`` from this CP's live inventory (``ProxyEndpoints``),
or on a global CP from the zones' synced insights (``DataplaneInsights``, ``ZoneInsights``); what is
known nowhere is left out. A global CP does not receive zone ingresses' and egresses' stream state,
so it shows them without subscriptions (kumactl: offline). Lists take the paging of every list and
answer ``{total, items, next}``; a one-item route answers 404 naming what is missing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from atoll.api import kuma_shapes, openapi, paths
from atoll.api.deps import DataplaneInsights, ProxyEndpoints, ZoneInsights
from atoll.api.wire import PageRequest, list_page, page_answer, require_mesh, respond
from atoll.errors import FieldError, InvalidInput, NotFound
from atoll.resources.meta import Resource
from atoll.resources.types import all_types
from atoll.store.protocol import ListFilter, Page, Store, list_all

BOOLEANS = {"true": True, "false": False}
GATEWAY_FILTERS = ("true", "false", "delegated", "builtin")


@dataclass(frozen=True, slots=True, kw_only=True)
class OverviewRoutes:
    """The handlers of Kuma's overview and insight routes."""

    store: Store
    proxies: ProxyEndpoints | None
    dataplane_insights: DataplaneInsights | None
    zone_insights: ZoneInsights | None

    def _insight(self, r: Resource[Any]) -> kuma_shapes.ProxyInsight:
        mesh = r.mesh or ""
        insight = self.proxies.insight(mesh, r.name) if self.proxies is not None else None
        if insight is None and self.dataplane_insights is not None:
            insight = self.dataplane_insights(mesh, r.name)
        return insight

    def _dataplane_overview(self, r: Resource[Any]) -> dict[str, Any]:
        insight = {"subscriptions": kuma_shapes.proxy_subscriptions(self._insight(r))}
        return kuma_shapes.overview("DataplaneOverview", r, "dataplane", "dataplaneInsight", insight)

    async def dataplanes(self, request: Request) -> Response:
        mesh = request.path_params["mesh"]
        paging = PageRequest.of(request)
        wanted = _DataplaneFilter.of(request)
        await require_mesh(self.store, mesh)
        every = await list_all(self.store, ListFilter(type="Dataplane", mesh=mesh, name_prefix=paging.name_prefix))
        chosen = [self._dataplane_overview(r) for r in every if wanted.matches(r)]
        return _page(request, paging, chosen)

    async def dataplane(self, request: Request) -> Response:
        mesh, name = request.path_params["mesh"], request.path_params["name"]
        return respond(request, self._dataplane_overview(await self.store.get("Dataplane", name, mesh)))

    def _dataplane_insight(self, r: Resource[Any]) -> dict[str, Any]:
        subscriptions = kuma_shapes.proxy_subscriptions(self._insight(r))
        return {"type": "DataplaneInsight", "mesh": r.mesh, "name": r.name, "subscriptions": subscriptions}

    async def kuma_dataplane_insights(self, request: Request) -> Response:
        mesh = request.path_params["mesh"]
        paging = PageRequest.of(request)
        await require_mesh(self.store, mesh)
        page = await list_page(self.store, paging, "Dataplane", mesh)
        return page_answer(request, paging, page, [self._dataplane_insight(r) for r in page.items])

    async def kuma_dataplane_insight(self, request: Request) -> Response:
        mesh, name = request.path_params["mesh"], request.path_params["name"]
        return respond(request, self._dataplane_insight(await self.store.get("Dataplane", name, mesh)))

    async def _mesh_insight(self, mesh: Resource[Any]) -> dict[str, Any]:
        dataplanes = await list_all(self.store, ListFilter(type="Dataplane", mesh=mesh.name))
        external = await list_all(self.store, ListFilter(type="ExternalService", mesh=mesh.name))
        totals: dict[str, int] = {}
        for rt in all_types():
            if rt.mesh_scoped:
                totals[rt.name] = (await self.store.list(ListFilter(type=rt.name, mesh=mesh.name), limit=0)).total
        policies = (rt.name for rt in all_types() if rt.policy)
        return kuma_shapes.mesh_insight(mesh, dataplanes, self._insight, external, totals, policies)

    async def mesh_insights(self, request: Request) -> Response:
        paging = PageRequest.of(request)
        page = await list_page(self.store, paging, "Mesh")
        return page_answer(request, paging, page, [await self._mesh_insight(m) for m in page.items])

    async def mesh_insight(self, request: Request) -> Response:
        return respond(request, await self._mesh_insight(await self.store.get("Mesh", request.path_params["name"])))

    async def _service_insights(self, mesh: str) -> list[dict[str, Any]]:
        await require_mesh(self.store, mesh)
        dataplanes = await list_all(self.store, ListFilter(type="Dataplane", mesh=mesh))
        external = await list_all(self.store, ListFilter(type="ExternalService", mesh=mesh))
        return kuma_shapes.service_insights(mesh, dataplanes, self._insight, external)

    async def service_insights(self, request: Request) -> Response:
        mesh = request.path_params["mesh"]
        paging = PageRequest.of(request)
        items = [s for s in await self._service_insights(mesh) if s["name"].startswith(paging.prefix)]
        return _page(request, paging, items)

    async def service_insight(self, request: Request) -> Response:
        mesh, name = request.path_params["mesh"], request.path_params["name"]
        for s in await self._service_insights(mesh):
            if s["name"] == name:
                return respond(request, s)
        raise NotFound(
            f'no service "{name}" in mesh {mesh}: no Dataplane or ExternalService has kuma.io/service={name}'
        )

    async def _zone_overview(self, r: Resource[Any]) -> dict[str, Any]:
        insight = await self.zone_insights(r.name) if self.zone_insights is not None else None
        zone_insight = {"subscriptions": kuma_shapes.zone_subscriptions(insight)}
        out = kuma_shapes.overview("ZoneOverview", r, "zone", "zoneInsight", zone_insight)
        out["zone"] = {"enabled": r.spec.is_enabled}
        return out

    def _zone_proxy_overview(self, kind: str, r: Resource[Any]) -> dict[str, Any]:
        insight: dict[str, Any] | None = None
        if self.proxies is not None:
            proxies = self.proxies
            insight = proxies.ingress_insight(r.name) if kind == "ZoneIngress" else proxies.egress_insight(r.name)
        field = "zoneIngress" if kind == "ZoneIngress" else "zoneEgress"
        subs = {"subscriptions": kuma_shapes.proxy_subscriptions(insight)}
        return kuma_shapes.overview(f"{kind}Overview", r, field, field + "Insight", subs)

    def zone_lists(self, kind: str) -> tuple[Handler, Handler]:
        """The list and one-item handlers of ``/zones``, ``/zoneingresses`` or ``/zoneegresses`` ``_overview``."""

        async def build(r: Resource[Any]) -> dict[str, Any]:
            return await self._zone_overview(r) if kind == "Zone" else self._zone_proxy_overview(kind, r)

        async def many(request: Request) -> Response:
            paging = PageRequest.of(request)
            page = await list_page(self.store, paging, kind)
            return page_answer(request, paging, page, [await build(r) for r in page.items])

        async def one(request: Request) -> Response:
            return respond(request, await build(await self.store.get(kind, request.path_params["name"])))

        return many, one


Handler = Callable[[Request], Awaitable[Response]]


def _page(request: Request, paging: PageRequest, items: list[dict[str, Any]]) -> Response:
    """The ``{total, items, next}`` answer of one page of ``items``, a list already filtered."""
    end = paging.offset + paging.size
    page = Page(items=[], total=len(items), next_offset=end if end < len(items) else None)
    return page_answer(request, paging, page, items[paging.offset : end])


@dataclass(frozen=True, slots=True)
class _DataplaneFilter:
    tags: tuple[tuple[str, str], ...]
    gateway: str | None
    ingress: bool | None

    @classmethod
    def of(cls, request: Request) -> _DataplaneFilter:
        query = request.query_params
        errors: list[FieldError] = []
        tags: list[tuple[str, str]] = []
        for raw in query.getlist("tag"):
            key, sep, value = raw.partition(":")
            if not sep or not key:
                errors.append(FieldError("tag", f'must be key:value, got "{raw[:60]}"'))
            tags.append((key, value))
        gateway = query.get("gateway")
        if gateway is not None and gateway.lower() not in GATEWAY_FILTERS:
            errors.append(FieldError("gateway", f"must be one of {', '.join(GATEWAY_FILTERS)}"))
        ingress = query.get("ingress")
        if ingress is not None and ingress.lower() not in BOOLEANS:
            errors.append(FieldError("ingress", "must be true or false"))
        if errors:
            raise InvalidInput(errors, title="invalid query")
        return cls(tuple(tags), gateway.lower() if gateway else None, BOOLEANS[ingress.lower()] if ingress else None)

    def matches(self, r: Resource[Any]) -> bool:
        if self.ingress:
            return False  # zone ingresses are ZoneIngress resources in Atoll, never Dataplanes
        gw = r.spec.networking.gateway
        if self.gateway == "false" and gw is not None:
            return False
        if self.gateway in ("true", "delegated", "builtin"):
            if gw is None or (self.gateway != "true" and (gw.type or "DELEGATED").lower() != self.gateway):
                return False
        tagged = [gw.tags] if gw is not None else [i.tags for i in r.spec.networking.inbound]
        return all(any(t.get(k) == v for t in tagged) for k, v in self.tags)


def add_overview_routes(router: APIRouter, routes: OverviewRoutes) -> None:
    """Kuma's overview and insight routes; add them before the resource routes, whose one-item
    routes would read ``_overview`` as a resource name."""
    lst = openapi.operation(openapi.LIST_QUERY, yaml=True)
    lst_mesh = openapi.operation([openapi.MESH, *openapi.LIST_QUERY], yaml=True)
    dp_filters = [openapi.MESH, *openapi.LIST_QUERY, *openapi.DATAPLANE_FILTERS]
    zones, zone = routes.zone_lists("Zone")
    ingresses, ingress = routes.zone_lists("ZoneIngress")
    egresses, egress = routes.zone_lists("ZoneEgress")
    table: list[tuple[str, Handler, dict[str, Any], str]] = [
        (
            paths.KUMA_DATAPLANES_OVERVIEW,
            routes.dataplanes,
            openapi.operation(dp_filters, yaml=True),
            "Dataplanes with their proxies' state (Kuma's DataplaneOverview)",
        ),
        (paths.KUMA_DATAPLANE_OVERVIEW, routes.dataplane, _one([openapi.MESH], "Dataplane"), "One DataplaneOverview"),
        (
            paths.KUMA_DATAPLANE_INSIGHTS,
            routes.kuma_dataplane_insights,
            lst_mesh,
            "DataplaneInsight (Kuma's) of each Dataplane",
        ),
        (
            paths.KUMA_DATAPLANE_INSIGHT,
            routes.kuma_dataplane_insight,
            _one([openapi.MESH], "Dataplane"),
            "One DataplaneInsight",
        ),
        (paths.KUMA_MESH_INSIGHTS, routes.mesh_insights, lst, "MeshInsight of every mesh"),
        (paths.KUMA_MESH_INSIGHT, routes.mesh_insight, _one([], "Mesh"), "MeshInsight of one mesh"),
        (paths.KUMA_SERVICE_INSIGHTS, routes.service_insights, lst_mesh, "ServiceInsight of every service of a mesh"),
        (
            paths.KUMA_SERVICE_INSIGHT,
            routes.service_insight,
            _one([openapi.MESH], "service"),
            "ServiceInsight of one service",
        ),
        (paths.KUMA_ZONES_OVERVIEW, zones, lst, "Zones with their KDS state (Kuma's ZoneOverview)"),
        (paths.KUMA_ZONE_OVERVIEW, zone, _one([], "Zone"), "One ZoneOverview"),
        (paths.KUMA_ZONE_INGRESSES_OVERVIEW, ingresses, lst, "Zone ingresses with their proxy's state"),
        (paths.KUMA_ZONE_INGRESS_OVERVIEW, ingress, _one([], "ZoneIngress"), "One ZoneIngressOverview"),
        (paths.KUMA_ZONE_EGRESSES_OVERVIEW, egresses, lst, "Zone egresses with their proxy's state"),
        (paths.KUMA_ZONE_EGRESS_OVERVIEW, egress, _one([], "ZoneEgress"), "One ZoneEgressOverview"),
    ]
    for path, endpoint, extra, summary in table:
        router.add_api_route(path, endpoint, methods=["GET"], summary=summary, tags=["insights"], openapi_extra=extra)


def _one(params: list[dict[str, Any]], what: str) -> dict[str, Any]:
    return openapi.operation([*params, openapi.name_param(what)], yaml=True)
