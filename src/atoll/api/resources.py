"""Resource routes: ``GET /``, ``GET /_resources``, and list/get/put/delete of every resource type.

Routes are registered per ``ResourceType`` known when the app is built (paths from
``atoll.api.paths``), each type's in this order: list (in a mesh, or at the root), list across
meshes (mesh-scoped types), get, put, delete — the order ``Allow`` lists methods in. A type's plural
is Kuma's (``external-services``); its ``plural_aliases`` (``externalservices``) answer the same.

- ``GET`` of a list answers a ``{total, items, next}`` page (``size``, ``offset``, ``name`` prefix);
  a mesh in the path must exist (404 naming ``mesh``).
- ``PUT`` takes one Universal document (JSON or YAML) and answers 201 on create, 200 on update, with
  ``ETag: "<version>"``; ``If-Match: <version>`` makes it conditional (``atoll.api.writes``). The
  answer is the stored resource, plus ``warnings`` when part of it is stored and not enforced
  (``atoll.topology.enforcement``: ``<kind or field path>: <why>``).
- Secret types answer only admin clients, and every write (PUT, DELETE) needs an admin. A global CP
  refuses writes of zone-owned types, a federated zone CP those of global-owned types, and every CP
  those of the types the control plane writes itself (owner ``cp``: VipAllocation) (405).

``add_fallback_routes`` adds the routes that answer for type names no route serves under ``/meshes/{mesh}/``: 404 naming
the known types, 405 for a known type and a method it does not serve. They must be added last.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from atoll.api import openapi, paths
from atoll.api.body import check_content_type, parse_document, read_body
from atoll.api.deps import ApiInfo
from atoll.api.errors import FALLBACK_ROUTE, HttpError
from atoll.api.wire import Access, PageRequest, etag, if_match, list_page, page_answer, require_mesh, respond
from atoll.api.writes import ResourceWriter, decode_for_path
from atoll.resources.codec import encode
from atoll.resources.types import ResourceType
from atoll.store.protocol import Store
from atoll.topology.enforcement import unenforced

PRODUCT = "Atoll"

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceRoutes:
    """The handlers of resource routes; the per-type ones are built for one ``ResourceType``."""

    store: Store
    info: ApiInfo
    access: Access
    writer: ResourceWriter
    types: Sequence[ResourceType]
    max_body_bytes: int

    async def index(self, request: Request) -> dict[str, Any]:
        info = self.info
        return {"product": PRODUCT, "tagline": PRODUCT, "version": info.version, "mode": info.mode, "zone": info.zone}

    async def resource_types(self, request: Request) -> dict[str, Any]:
        return {"resources": [_describe(rt) for rt in self.types]}

    def list_handler(self, rt: ResourceType) -> Handler:
        async def list_resources(request: Request) -> Response:
            self.access.check_read(rt, request)
            mesh = request.path_params.get("mesh")
            paging = PageRequest.of(request)
            if mesh is not None:
                await require_mesh(self.store, mesh)
            page = await list_page(self.store, paging, rt.name, mesh)
            return page_answer(request, paging, page, [encode(r) for r in page.items])

        return list_resources

    def get_handler(self, rt: ResourceType) -> Handler:
        async def get_resource(request: Request) -> Response:
            self.access.check_read(rt, request)
            name, mesh = _ident(request)
            r = await self.store.get(rt.name, name, mesh)
            return respond(request, encode(r), headers=etag(r))

        return get_resource

    def delete_handler(self, rt: ResourceType) -> Handler:
        async def delete_resource(request: Request) -> Response:
            name, mesh, version = self._write_target(rt, request)
            force = request.query_params.get("force", "false").lower() in ("true", "1", "yes")
            await self.writer.delete(rt, name, mesh, version, force=force)
            return JSONResponse({})

        return delete_resource

    def put_handler(self, rt: ResourceType) -> Handler:
        async def put_resource(request: Request) -> Response:
            name, mesh, version = self._write_target(rt, request)
            kind = check_content_type(request)
            doc = parse_document(await read_body(request, self.max_body_bytes), kind)
            resource = decode_for_path(rt, doc, name, mesh)
            if mesh is not None:
                await require_mesh(self.store, mesh)
            stored, created = await self.writer.write(resource, version)
            body = encode(stored)
            warnings = unenforced(stored)
            if warnings:  # stored, but something in it is read by no generator: say so
                body["warnings"] = warnings
            return JSONResponse(body, status_code=201 if created else 200, headers=etag(stored))

        return put_resource

    def _write_target(self, rt: ResourceType, request: Request) -> tuple[str, str | None, int | None]:
        """The name, mesh and ``If-Match`` version of a write, once it is allowed: secret types to
        admins only, writes to admins only, and only of types this CP owns."""
        self.access.check_read(rt, request)
        self.access.require_admin(request, f"writing {rt.name} resources needs an admin client")
        info = self.info
        if rt.owner == "cp":
            raise HttpError(
                405, "read-only", f"{rt.name} resources are written by the control plane itself, never by clients"
            )
        if info.mode == "global" and rt.owner == "zone":
            raise HttpError(
                405,
                "read-only on global",
                f"{rt.name} resources are written on zone control planes; the global control plane only reads them",
            )
        if info.mode == "zone" and info.federated and rt.owner == "global":
            raise HttpError(
                405,
                "read-only on a federated zone",
                f"{rt.name} resources are written on the global control plane and synced to this zone",
            )
        name, mesh = _ident(request)
        return name, mesh, if_match(request)


def _ident(request: Request) -> tuple[str, str | None]:
    return request.path_params["name"], request.path_params.get("mesh")


def add_resource_routes(router: APIRouter, routes: ResourceRoutes) -> None:
    """``/``, ``/_resources`` and the routes of every type ``routes`` serves."""
    summary = "Product, version and role of this control plane"
    errors = {"responses": openapi.error_responses([405, 500])}
    router.add_api_route(paths.ROOT, routes.index, methods=["GET"], summary=summary, openapi_extra=errors)
    summary = "Resource types served by this API"
    router.add_api_route(
        paths.RESOURCE_TYPES, routes.resource_types, methods=["GET"], summary=summary, openapi_extra=errors
    )
    for rt in routes.types:
        _add_type_routes(router, routes, rt)


def _describe(rt: ResourceType) -> dict[str, Any]:
    """One entry of ``/_resources``: name, Kuma's plural (and Atoll's older spellings), scope, path."""
    path = paths.collection_template(rt)
    out: dict[str, Any] = {"name": rt.name, "plural": rt.plural, "scope": rt.scope.value, "policy": rt.policy}
    out["path"] = path
    if rt.plural_aliases:
        out["pluralAliases"] = list(rt.plural_aliases)
    return out


def _add_type_routes(router: APIRouter, routes: ResourceRoutes, rt: ResourceType) -> None:
    """The list, get, put and delete routes of one type, documented in the OpenAPI schema; the same
    routes at the type's alias plurals (``paths.alias_templates``), left out of the schema."""
    tags: list[str | enum.Enum] = [rt.name]
    in_mesh = " of a mesh" if rt.mesh_scoped else ""
    lists = [(paths.collection_template(rt), f"List {rt.name} resources{in_mesh}", rt.mesh_scoped)]
    if rt.mesh_scoped:
        lists.append((paths.all_meshes_template(rt), f"List {rt.name} resources of every mesh", False))
    aliases = paths.alias_templates(rt)
    for path, summary, with_mesh in lists:
        extra = openapi.list_operation(rt, in_mesh=with_mesh)
        for route in [path, *(alias for alias, canonical in aliases if canonical == path)]:
            router.add_api_route(
                route,
                routes.list_handler(rt),
                methods=["GET"],
                summary=summary,
                tags=tags,
                openapi_extra=extra,
                include_in_schema=route == path,
            )
    item = paths.item_template(rt)
    for method, handler, summary in (
        ("GET", routes.get_handler(rt), f"Get a {rt.name}"),
        ("PUT", routes.put_handler(rt), f"Create (201) or update (200) a {rt.name}"),
        ("DELETE", routes.delete_handler(rt), f"Delete a {rt.name}"),
    ):
        extra = openapi.item_operation(rt, method)
        for route in [item, *(alias for alias, canonical in aliases if canonical == item)]:
            router.add_api_route(
                route,
                handler,
                methods=[method],
                summary=summary,
                tags=tags,
                openapi_extra=extra,
                include_in_schema=route == item,
            )


def add_fallback_routes(router: APIRouter, types: Sequence[ResourceType]) -> None:
    """Catch-all routes under ``/meshes/{mesh}/`` for type names no route serves (add them last)."""
    mesh_plurals = sorted(p for rt in types if rt.mesh_scoped for p in (rt.plural, *rt.plural_aliases))

    async def unknown_type(request: Request) -> Response:
        plural = request.path_params["plural"]
        if plural in mesh_plurals:  # a known type, a method its routes do not serve
            raise StarletteHTTPException(405)
        known = ", ".join(sorted(rt.plural for rt in types if rt.mesh_scoped))
        raise HttpError(404, "unknown resource type", f'no resource type "{plural}" in a mesh; known: {known}')

    for template in (paths.MESH_ANY_COLLECTION, paths.MESH_ANY_ITEM):
        router.add_api_route(
            template, unknown_type, methods=["GET", "PUT", "DELETE"], include_in_schema=False, name=FALLBACK_ROUTE
        )
