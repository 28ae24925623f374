"""The REST API of a control plane: Kuma-shaped resource CRUD over a ``Store``.

``create_app`` builds a FastAPI app from what it uses (a store, an ``ApiInfo``, optional hooks); it
holds no global state. Routes are registered per ``ResourceType`` known at construction time
(paths from ``atoll.api.paths``):

- ``GET /`` — product, version, mode, zone; ``GET /_resources`` — the types; ``/openapi.json``.
- ``GET /{plural}`` lists (``{total, items, next}``; ``size``, ``offset``, ``name`` prefix);
  ``GET|PUT|DELETE /{plural}/{name}`` for global-scoped types (``meshes``, ``zones``, ...), the same
  under ``/meshes/{mesh}/`` for mesh-scoped ones; ``GET /{plural}`` of a mesh-scoped type lists it
  across meshes.
- ``PUT`` takes one Universal document (JSON or YAML). Envelope fields the body leaves out are
  taken from the path; ones that differ from it are errors naming the field. Everything is validated
  (all field errors at once) before the store is touched. ``If-Match: <version>`` makes the write
  conditional. 201 on create, 200 on update; responses carry ``ETag: "<version>"``.
- Creating a Mesh also creates its initial policies (``atoll.resources.defaults.initial_policies``).
- Secret types answer only admin clients, and every write (PUT, DELETE) needs an admin: ``is_admin``
  decides (``atoll.security.AdminAuth`` in a CP: loopback clients or ``Authorization: Bearer <admin
  token>``; it raises ``Unauthenticated`` -> 401). A check that returns False gives 403.
- ``POST /tokens/dataplane``, ``/tokens/zone``, ``/tokens/revocations`` (admin only) hand the JSON
  body to the injected ``TokenEndpoints`` (``atoll.security.TokenEndpoints``).
- ``POST /bootstrap`` hands the JSON body to the injected ``BootstrapHandler``.
- ``GET /zones+insights`` lists Zones with ``zoneInsight`` from the injected ``zone_insights``; a CP
  without proxies (global) answers ``dataplanes+insights`` from ``dataplane_insights`` (``atoll.kds``).

Errors are mapped to HTTP in ``atoll.api.errors`` only.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atoll.api import paths
from atoll.api.body import DEFAULT_MAX_BODY_BYTES, check_content_type, parse_document, read_body
from atoll.api.errors import FALLBACK_ROUTE, ApiError, install_error_handlers
from atoll.api.metrics import Metrics
from atoll.errors import AlreadyExists, Conflict, FieldError, InvalidInput, NotFound
from atoll.resources.codec import decode, encode
from atoll.resources.defaults import initial_policies as default_initial_policies
from atoll.resources.meta import Resource
from atoll.resources.types import ResourceType, all_types, find_type
from atoll.store.protocol import ListFilter, Store

log = logging.getLogger(__name__)

PRODUCT = "Atoll"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
WRITE_ATTEMPTS = 16  # unconditional PUT: read-then-write rounds before giving up with 409
MODES = ("standalone", "zone", "global")

BootstrapHandler = Callable[[dict[str, Any], str], Awaitable[dict[str, Any]]]
"""Answers ``POST /bootstrap``: the request body and the host name the proxy used to reach this CP (so
the bootstrap can point ADS at the same host) in, the response body out; may raise ``InvalidInput``."""


class ProxyEndpoints(Protocol):
    """What a CP that serves proxies adds to the API (``atoll.proxies`` implements it)."""

    async def bootstrap(self, body: dict[str, Any], cp_host: str) -> dict[str, Any]: ...

    async def report_health(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def insight(self, mesh: str, name: str) -> dict[str, Any] | None: ...

    def xds_config(self, mesh: str, name: str) -> dict[str, Any] | None: ...

    async def poll_admin_request(
        self, mesh: str, name: str, wait: float, token: str | None = None
    ) -> dict[str, Any] | None: ...

    def admin_response(self, body: dict[str, Any]) -> None: ...

    async def admin(self, mesh: str, name: str, path: str) -> Any: ...

    def egress_insight(self, name: str) -> dict[str, Any]: ...


class TokenEndpoints(Protocol):
    """What a CP that issues tokens adds to the API (``atoll.security`` implements it)."""

    async def issue_dataplane(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def issue_zone(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def revoke(self, body: dict[str, Any]) -> dict[str, Any]: ...


AdminCheck = Callable[[Request], bool]
DataplaneInsights = Callable[[str, str], dict[str, Any] | None]
"""``(mesh, name) -> insight`` for CPs that serve no proxies themselves (global: synced insights)."""
ZoneInsights = Callable[[str], Awaitable[dict[str, Any]]]
"""``zone name -> zoneInsight`` for ``GET /zones+insights`` (global: ``atoll.kds.GlobalInventory``)."""
InitialPolicies = Callable[[Resource[Any]], Iterable[Resource[Any]]]


@dataclass(frozen=True, slots=True)
class ApiInfo:
    """What ``GET /`` reports, and the role that decides which writes this API accepts."""

    version: str
    mode: str = "standalone"  # standalone | zone | global
    zone: str | None = None
    # A zone CP connected to a global CP: global-owned types (Meshes, policies) are read-only here.
    federated: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")


def is_loopback_admin(request: Request) -> bool:
    """Admin check until tokens exist: a client on a loopback address is an admin."""
    client = request.client
    if client is None:
        return False
    try:
        return ipaddress.ip_address(client.host).is_loopback
    except ValueError:
        return False


def create_app(
    store: Store,
    info: ApiInfo,
    *,
    bootstrap: BootstrapHandler | None = None,
    proxies: ProxyEndpoints | None = None,
    metrics: Metrics | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    is_admin: AdminCheck = is_loopback_admin,
    initial_policies: InitialPolicies = default_initial_policies,
    types: Iterable[ResourceType] | None = None,
    tokens: TokenEndpoints | None = None,
    dataplane_insights: DataplaneInsights | None = None,
    zone_insights: ZoneInsights | None = None,
) -> FastAPI:
    """The REST API app over ``store``. ``types`` defaults to every registered resource type."""
    app = FastAPI(
        title=f"{PRODUCT} control plane API",
        version=info.version,
        docs_url=None,
        redoc_url=None,
        openapi_url=paths.OPENAPI,
    )
    install_error_handlers(app)
    if metrics is not None:
        app.add_middleware(_MetricsMiddleware, metrics=metrics)
    api = _ResourceApi(store, info, max_body_bytes, is_admin, initial_policies)
    known = list(types) if types is not None else all_types()

    @app.get(paths.ROOT, summary="Product, version and role of this control plane")
    async def index() -> dict[str, Any]:
        return {
            "product": PRODUCT,
            "tagline": PRODUCT,
            "version": info.version,
            "mode": info.mode,
            "zone": info.zone,
        }

    @app.get(paths.RESOURCE_TYPES, summary="Resource types served by this API")
    async def resource_types() -> dict[str, Any]:
        return {
            "resources": [
                {
                    "name": rt.name,
                    "plural": rt.plural,
                    "scope": rt.scope.value,
                    "policy": rt.policy,
                    "path": paths.collection_template(rt),
                }
                for rt in known
            ]
        }

    for rt in known:
        _add_type_routes(app, api, rt)

    mesh_plurals = sorted(rt.plural for rt in known if rt.mesh_scoped)

    async def unknown_type(request: Request) -> Response:
        plural = request.path_params["plural"]
        if plural in mesh_plurals:  # a known type, a method its routes do not serve
            raise StarletteHTTPException(405)
        known_list = ", ".join(mesh_plurals)
        raise ApiError(404, "unknown resource type", f'no resource type "{plural}" in a mesh; known: {known_list}')

    for template in (paths.MESHES + "/{mesh}/{plural}", paths.MESHES + "/{mesh}/{plural}/{name}"):
        app.add_api_route(
            template, unknown_type, methods=["GET", "PUT", "DELETE"], include_in_schema=False, name=FALLBACK_ROUTE
        )

    if proxies is not None and bootstrap is None:
        bootstrap = proxies.bootstrap
    no_proxies = "this control plane serves no proxies" + (
        ": proxies connect to a zone control plane, not to global" if info.mode == "global" else ""
    )

    async def json_object(request: Request, what: str) -> dict[str, Any]:
        kind = check_content_type(request, yaml_allowed=False)
        doc = parse_document(await read_body(request, max_body_bytes), kind)
        if not isinstance(doc, dict):
            raise InvalidInput(f"the {what} must be a JSON object", title=f"invalid {what}")
        return doc

    @app.post(paths.BOOTSTRAP, summary="Envoy bootstrap for a data plane proxy")
    async def post_bootstrap(request: Request) -> Response:
        if bootstrap is None:
            raise ApiError(404, "not found", no_proxies)
        doc = await json_object(request, "bootstrap request")
        return JSONResponse(await bootstrap(doc, request.url.hostname or "127.0.0.1"))

    @app.post(paths.DP_HEALTH, summary="Health of a proxy's inbounds, reported by its agent")
    async def post_health(request: Request) -> Response:
        if proxies is None:
            raise ApiError(404, "not found", no_proxies)
        doc = await json_object(request, "health report")
        return JSONResponse(await proxies.report_health(doc))

    def token_route(
        path: str, what: str, call: Callable[[TokenEndpoints, dict[str, Any]], Awaitable[dict[str, Any]]]
    ) -> None:
        async def handler(request: Request) -> Response:
            api.require_admin(request, f"{what}s are issued to admin clients only")
            if tokens is None:
                raise ApiError(404, "not found", "this control plane issues no tokens")
            doc = await json_object(request, what)
            return JSONResponse(await call(tokens, doc))

        app.add_api_route(
            path, handler, methods=["POST"], summary=f"{what[0].upper()}{what[1:]} (admin only)", tags=["tokens"]
        )

    token_route(paths.TOKENS_DATAPLANE, "dataplane token request", lambda t, body: t.issue_dataplane(body))
    token_route(paths.TOKENS_ZONE, "zone token request", lambda t, body: t.issue_zone(body))
    token_route(paths.TOKENS_REVOCATIONS, "token revocation", lambda t, body: t.revoke(body))

    dp_type = find_type("Dataplane")

    @app.get(paths.DATAPLANES_INSIGHTS, summary="Dataplanes of a mesh with their proxies' xDS status")
    async def dataplanes_insights(request: Request) -> Response:
        mesh = request.path_params["mesh"]
        size, offset, prefix = _paging(request.query_params)
        await api._require_mesh(mesh)
        assert dp_type is not None
        page = await store.list(
            ListFilter(type=dp_type.name, mesh=mesh, name_prefix=prefix or None), offset=offset, limit=size
        )
        items = []
        for r in page.items:
            doc = encode(r)
            insight = proxies.insight(mesh, r.name) if proxies is not None else None
            if insight is None and dataplane_insights is not None:
                insight = dataplane_insights(mesh, r.name)
            doc["dataplaneInsight"] = insight if insight is not None else {"online": False}
            items.append(doc)
        next_url = None
        if page.next_offset is not None:
            next_url = str(request.url.include_query_params(offset=page.next_offset, size=size))
        return _respond(request, {"total": page.total, "items": items, "next": next_url})

    @app.get(paths.DATAPLANE_XDS, summary="The xDS configuration the CP serves to one proxy")
    async def dataplane_xds(request: Request) -> Response:
        mesh, name = request.path_params["mesh"], request.path_params["name"]
        api.require_admin(request, "the served configuration holds the proxy's private key")
        assert dp_type is not None
        await store.get(dp_type.name, name, mesh)
        config = proxies.xds_config(mesh, name) if proxies is not None else None
        if config is None:
            raise ApiError(404, "not found", f"proxy {mesh}.{name} is not connected to this control plane")
        return _respond(request, config)

    @app.get(paths.DP_REQUESTS, summary="Long poll of a proxy's agent for Envoy admin requests")
    async def dp_requests(request: Request) -> Response:
        if proxies is None:
            raise ApiError(404, "not found", no_proxies)
        q = request.query_params
        mesh, name = q.get("mesh"), q.get("name")
        errors = [FieldError(k, "required") for k, v in (("mesh", mesh), ("name", name)) if not v]
        try:
            wait = min(30.0, max(0.0, float(q.get("wait", "20"))))
        except ValueError:
            errors.append(FieldError("wait", f"must be a number of seconds, got {q.get('wait')!r}"))
            wait = 0.0
        if errors:
            raise InvalidInput(errors, title="invalid poll")
        assert mesh is not None and name is not None
        req = await proxies.poll_admin_request(mesh, name, wait, request.headers.get("x-atoll-token"))
        return Response(status_code=204) if req is None else JSONResponse(req)

    @app.post(paths.DP_RESPONSES, summary="An agent's answer to an Envoy admin request")
    async def dp_responses(request: Request) -> Response:
        if proxies is None:
            raise ApiError(404, "not found", no_proxies)
        proxies.admin_response(await json_object(request, "admin response"))
        return JSONResponse({})

    @app.get(paths.DATAPLANE_CONFIG_DUMP, summary="Envoy's own config dump of one proxy, through its agent")
    async def dataplane_config_dump(request: Request) -> Response:
        mesh, name = request.path_params["mesh"], request.path_params["name"]
        api.require_admin(request, "a config dump holds the proxy's secrets")
        assert dp_type is not None
        await store.get(dp_type.name, name, mesh)
        if proxies is None:
            raise ApiError(404, "not found", no_proxies)
        return JSONResponse(await proxies.admin(mesh, name, "/config_dump"))

    @app.get(paths.DATAPLANE_STATS, summary="Envoy's stats of one proxy (JSON), through its agent")
    async def dataplane_stats(request: Request) -> Response:
        mesh, name = request.path_params["mesh"], request.path_params["name"]
        assert dp_type is not None
        await store.get(dp_type.name, name, mesh)
        if proxies is None:
            raise ApiError(404, "not found", no_proxies)
        return JSONResponse(await proxies.admin(mesh, name, "/stats?format=json"))

    @app.get(paths.ZONE_EGRESSES_INSIGHTS, summary="Zone egresses with their proxy's state and what they route")
    async def zone_egresses_insights(request: Request) -> Response:
        size, offset, prefix = _paging(request.query_params)
        page = await store.list(ListFilter(type="ZoneEgress", name_prefix=prefix or None), offset=offset, limit=size)
        items = []
        for r in page.items:
            doc = encode(r)
            doc["zoneEgressInsight"] = proxies.egress_insight(r.name) if proxies is not None else {"online": False}
            items.append(doc)
        next_url = None
        if page.next_offset is not None:
            next_url = str(request.url.include_query_params(offset=page.next_offset, size=size))
        return _respond(request, {"total": page.total, "items": items, "next": next_url})

    # Serve these before the generic /meshes/{mesh}/{plural}[/{name}] routes that would shadow them.
    @app.get(paths.ZONES_INSIGHTS, summary="Zones with their connection state (global control plane)")
    async def zones_insights(request: Request) -> Response:
        size, offset, prefix = _paging(request.query_params)
        page = await store.list(ListFilter(type="Zone", name_prefix=prefix or None), offset=offset, limit=size)
        items = []
        for r in page.items:
            zone_insight = await zone_insights(r.name) if zone_insights is not None else {"online": False}
            items.append({"type": "Zone", "name": r.name, "enabled": r.spec.is_enabled, "zoneInsight": zone_insight})
        next_url = None
        if page.next_offset is not None:
            next_url = str(request.url.include_query_params(offset=page.next_offset, size=size))
        return _respond(request, {"total": page.total, "items": items, "next": next_url})

    first = [
        r
        for r in app.router.routes
        if getattr(r, "path", None)
        in (paths.DATAPLANES_INSIGHTS, paths.DATAPLANE_XDS, paths.DATAPLANE_CONFIG_DUMP, paths.DATAPLANE_STATS)
    ]
    app.router.routes[:] = first + [r for r in app.router.routes if r not in first]
    return app


def _param(name: str, where: str, description: str, typ: str = "string", required: bool = True) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "description": description, "schema": {"type": typ}}


_LIST_QUERY = [
    _param("size", "query", f"Items per page, 1..{MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE}).", "integer", False),
    _param("offset", "query", "Index of the first item (default 0).", "integer", False),
    _param("name", "query", "Only resources whose name starts with this prefix.", required=False),
]
_IF_MATCH = _param("If-Match", "header", "Only write if the stored version is this one.", required=False)
_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/yaml": {"schema": {"type": "object"}},
    },
}


def _add_type_routes(app: FastAPI, api: _ResourceApi, rt: ResourceType) -> None:
    """The list, get, put and delete routes of one type, documented in the OpenAPI schema."""
    tags: list[str | enum.Enum] = [rt.name]
    mesh = [_param("mesh", "path", "Name of the mesh.")] if rt.mesh_scoped else []
    name = [_param("name", "path", f"Name of the {rt.name}.")]
    in_mesh = " of a mesh" if rt.mesh_scoped else ""
    app.add_api_route(
        paths.collection_template(rt),
        api.list_handler(rt),
        methods=["GET"],
        summary=f"List {rt.name} resources{in_mesh}",
        tags=tags,
        openapi_extra={"parameters": mesh + _LIST_QUERY},
    )
    if rt.mesh_scoped:
        app.add_api_route(
            paths.all_meshes_template(rt),
            api.list_handler(rt),
            methods=["GET"],
            summary=f"List {rt.name} resources of every mesh",
            tags=tags,
            openapi_extra={"parameters": _LIST_QUERY},
        )
    item = paths.item_template(rt)
    app.add_api_route(
        item,
        api.get_handler(rt),
        methods=["GET"],
        summary=f"Get a {rt.name}",
        tags=tags,
        openapi_extra={"parameters": mesh + name},
    )
    app.add_api_route(
        item,
        api.put_handler(rt),
        methods=["PUT"],
        summary=f"Create (201) or update (200) a {rt.name}",
        tags=tags,
        openapi_extra={"parameters": [*mesh, *name, _IF_MATCH], "requestBody": _BODY},
    )
    app.add_api_route(
        item,
        api.delete_handler(rt),
        methods=["DELETE"],
        summary=f"Delete a {rt.name}",
        tags=tags,
        openapi_extra={"parameters": [*mesh, *name, _IF_MATCH]},
    )


class _ResourceApi:
    """The handlers of resource routes, built per type (closures over ``ResourceType``)."""

    def __init__(
        self,
        store: Store,
        info: ApiInfo,
        max_body_bytes: int,
        is_admin: AdminCheck,
        initial_policies: InitialPolicies,
    ) -> None:
        self.store = store
        self.info = info
        self.max_body_bytes = max_body_bytes
        self.is_admin = is_admin
        self.initial_policies = initial_policies

    # --- handlers -------------------------------------------------------------------------------

    def list_handler(self, rt: ResourceType) -> Callable[[Request], Awaitable[Response]]:
        async def list_resources(request: Request) -> Response:
            self._check_access(rt, request)
            mesh = request.path_params.get("mesh")
            size, offset, prefix = _paging(request.query_params)
            if mesh is not None:
                await self._require_mesh(mesh)
            page = await self.store.list(
                ListFilter(type=rt.name, mesh=mesh, name_prefix=prefix or None), offset=offset, limit=size
            )
            next_url = None
            if page.next_offset is not None:
                next_url = str(request.url.include_query_params(offset=page.next_offset, size=size))
            body = {"total": page.total, "items": [encode(r) for r in page.items], "next": next_url}
            return _respond(request, body)

        return list_resources

    def get_handler(self, rt: ResourceType) -> Callable[[Request], Awaitable[Response]]:
        async def get_resource(request: Request) -> Response:
            self._check_access(rt, request)
            name, mesh = _ident(request)
            r = await self.store.get(rt.name, name, mesh)
            return _respond(request, encode(r), headers=_etag(r))

        return get_resource

    def delete_handler(self, rt: ResourceType) -> Callable[[Request], Awaitable[Response]]:
        async def delete_resource(request: Request) -> Response:
            self._check_access(rt, request)
            self.require_admin(request, f"writing {rt.name} resources needs an admin client")
            self._check_writable(rt)
            name, mesh = _ident(request)
            version = _if_match(request)
            await self.store.delete(rt.name, name, mesh, version=version)
            return JSONResponse({})

        return delete_resource

    def put_handler(self, rt: ResourceType) -> Callable[[Request], Awaitable[Response]]:
        async def put_resource(request: Request) -> Response:
            self._check_access(rt, request)
            self.require_admin(request, f"writing {rt.name} resources needs an admin client")
            self._check_writable(rt)
            name, mesh = _ident(request)
            version = _if_match(request)
            kind = check_content_type(request)
            doc = parse_document(await read_body(request, self.max_body_bytes), kind)
            resource = _decode_for_path(rt, doc, name, mesh)
            if mesh is not None:
                await self._require_mesh(mesh)
            stored, created = await self._write(resource, version)
            if created and rt.name == "Mesh":
                await self._create_initial_policies(stored)
            return JSONResponse(encode(stored), status_code=201 if created else 200, headers=_etag(stored))

        return put_resource

    # --- helpers --------------------------------------------------------------------------------

    def _check_access(self, rt: ResourceType, request: Request) -> None:
        if rt.secret and not self.is_admin(request):
            raise ApiError(403, "access denied", f"{rt.name} resources are only available to admin clients")

    def require_admin(self, request: Request, details: str) -> None:
        """403 if ``is_admin`` says no (an ``AdminAuth`` raises ``Unauthenticated`` -> 401 itself)."""
        if not self.is_admin(request):
            raise ApiError(403, "access denied", details)

    def _check_writable(self, rt: ResourceType) -> None:
        info = self.info
        if info.mode == "global" and rt.owner == "zone":
            raise ApiError(
                405,
                "read-only on global",
                f"{rt.name} resources are written on zone control planes; the global control plane only reads them",
            )
        if info.mode == "zone" and info.federated and rt.owner == "global":
            raise ApiError(
                405,
                "read-only on a federated zone",
                f"{rt.name} resources are written on the global control plane and synced to this zone",
            )

    async def _require_mesh(self, mesh: str) -> None:
        try:
            await self.store.get("Mesh", mesh)
        except NotFound:
            err = FieldError("mesh", f'mesh "{mesh}" does not exist')
            raise ApiError(404, "not found", str(err), [err]) from None

    async def _write(self, resource: Resource[Any], version: int | None) -> tuple[Resource[Any], bool]:
        """Create or update; with ``version`` only update that version. Returns (stored, created)."""
        if version is not None:
            try:
                return await self.store.update(resource.with_meta(version=version)), False
            except NotFound:
                raise Conflict(
                    f"{resource.key} does not exist, so If-Match: {version} cannot match; send no If-Match to create it"
                ) from None
        # Unconditional: create, or update whatever version is stored. Another writer may slip in
        # between our read and our write; every round some writer wins, so retry a bounded number
        # of times before reporting the conflict.
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            last = attempt == WRITE_ATTEMPTS
            try:
                current = await self.store.get(resource.type, resource.name, resource.mesh)
            except NotFound:
                try:
                    return await self.store.create(resource), True
                except AlreadyExists:
                    if last:
                        raise
                    continue
            try:
                return await self.store.update(resource.with_meta(version=current.meta.version)), False
            except (Conflict, NotFound):
                if last:
                    raise
        raise AssertionError("unreachable")

    async def _create_initial_policies(self, mesh: Resource[Any]) -> None:
        for policy in self.initial_policies(mesh):
            try:
                await self.store.create(policy)
            except AlreadyExists:
                pass


def _ident(request: Request) -> tuple[str, str | None]:
    return request.path_params["name"], request.path_params.get("mesh")


def _etag(r: Resource[Any]) -> dict[str, str]:
    return {"ETag": f'"{r.meta.version}"'}


def _respond(request: Request, body: Any, *, headers: dict[str, str] | None = None) -> Response:
    """JSON, or YAML when the client asks for it in ``Accept``."""
    accept = request.headers.get("accept", "")
    if "yaml" in accept and "json" not in accept:
        text = yaml.safe_dump(body, sort_keys=False, default_flow_style=False, allow_unicode=True)
        return Response(text, media_type="application/yaml", headers=headers)
    return JSONResponse(body, headers=headers)


def _if_match(request: Request) -> int | None:
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    text = raw.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit() or int(text) < 1:
        raise InvalidInput(
            FieldError("If-Match", f'must be a resource version (a positive integer), got "{raw}"'),
            title="invalid header",
        )
    return int(text)


def _paging(query: Mapping[str, str]) -> tuple[int, int, str]:
    errors: list[FieldError] = []

    def number(key: str, default: int, low: int, high: int | None) -> int:
        raw = query.get(key)
        if raw is None:
            return default
        if not raw.strip().isdigit():
            errors.append(FieldError(key, f'must be a whole number, got "{raw}"'))
            return default
        value = int(raw)
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f"at least {low}"
            errors.append(FieldError(key, f"must be {bound}, got {value}"))
            return default
        return value

    size = number("size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    offset = number("offset", 0, 0, None)
    if errors:
        raise InvalidInput(errors, title="invalid query")
    return size, offset, query.get("name", "")


def _decode_for_path(rt: ResourceType, doc: Any, name: str, mesh: str | None) -> Resource[Any]:
    """Decode ``doc`` as the resource the path names. Envelope fields missing from the body come
    from the path; differing ones are errors. Raises ``InvalidInput`` with every problem found."""
    if not isinstance(doc, Mapping):
        return decode(doc)  # raises the codec's "must be a mapping" error
    doc = dict(doc)
    body_type = doc.setdefault("type", rt.name)
    if body_type != rt.name:
        other = find_type(body_type) if isinstance(body_type, str) else None
        if other is None or other.name != body_type:
            known = ", ".join(sorted(t.name for t in all_types()))
            reason = f'unsupported type "{body_type}"; known types: {known}'
            raise InvalidInput(FieldError("type", reason), title="unsupported type")
        reason = f'"{body_type}" does not match the path, which holds {rt.name} resources'
        raise InvalidInput(FieldError("type", reason), title="type does not match the path")
    errors: list[FieldError] = []
    body_name = doc.setdefault("name", name)
    if body_name != name:
        errors.append(FieldError("name", f'"{body_name}" does not match the name in the path "{name}"'))
    if rt.mesh_scoped:
        body_mesh = doc.setdefault("mesh", mesh)
        if body_mesh != mesh:
            errors.append(FieldError("mesh", f'"{body_mesh}" does not match the mesh in the path "{mesh}"'))
    try:
        resource = decode(doc)
    except InvalidInput as e:
        errors.extend(fe for fe in e.errors if fe.path not in {x.path for x in errors})
        title = e.title
    else:
        title = "the body does not match the path" if errors else ""
    if errors:
        raise InvalidInput(errors, title=title)
    return resource.with_meta(creation_time=None, modification_time=None)


class _MetricsMiddleware:
    """Counts every request by method, route template (``unmatched`` if none) and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(scope["method"], template, status, time.perf_counter() - start)
