"""The GUI's routes on the API app: the page, its static files, its JSON views and its event stream.

- ``GET /gui`` (and ``/gui/``): the one HTML page. It holds no data: every number on it is fetched
  by the browser with the admin token in the ``Authorization`` header (the login form keeps the token
  in the tab's ``sessionStorage``; it is never put in a URL). Without a token a remote browser gets
  the page, its login form, and nothing else.
- ``GET /gui/static/{file}``: the page's scripts and style sheet, from this package (no CDN, no build).
- ``GET /gui/api/...``: the views of ``atoll.gui.views`` (zones, meshes, services, proxies, rollout)
  and ``session`` (what this CP is and which kinds it may not write). Admin only, like the
  inspection the CLI does: a loopback client is an admin, any other sends the admin token.
  Policies, YAML, a policy's proxies and config dumps are read from the REST API itself.
- ``GET /gui/api/events``: server-sent events from ``atoll.gui.live.LiveEvents`` (admin only;
  ``data: {"changed": [...]}`` per batch, a comment line as heartbeat; 503 past the client cap).

``BrowserRedirect`` sends a browser asking for ``/`` (``Accept: text/html``) to ``/gui/``; every
other client (kumactl's version check, the CLI) still gets the JSON index.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from atoll.api.errors import HttpError
from atoll.api.wire import Access, PageRequest, respond
from atoll.errors import FieldError, InvalidInput
from atoll.gui import views
from atoll.gui.live import LiveEvents
from atoll.resources.types import types_where

GUI = "/gui"
GUI_API = GUI + "/api"
STATIC = GUI + "/static/{file}"
STATIC_FILES = {
    "gui.js": "text/javascript",
    "pages.js": "text/javascript",
    "gui.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
HEARTBEAT_SECONDS = 15.0
SETTLE_SECONDS = 0.2
MAX_FILTER_LENGTH = 253
PROXY_STATES = ("", "online", "offline", "nack")
NO_STORE = {"Cache-Control": "no-store"}
PAGE_HEADERS = {
    **NO_STORE,
    # Only this CP's own script and style; no framing (clickjacking), no <base>, forms post nowhere else.
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _asset(name: str) -> bytes:
    return resources.files("atoll.gui").joinpath("static", name).read_bytes()


class GuiRoutes:
    """The handlers of the GUI's routes over ``views.Sources``."""

    def __init__(self, sources: views.Sources, access: Access, events: LiveEvents) -> None:
        self.src = sources
        self.access = access
        self.events = events
        self._page = _asset("index.html")

    async def page(self, request: Request) -> Response:
        return Response(self._page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    async def static(self, request: Request) -> Response:
        name = request.path_params["file"]
        media = STATIC_FILES.get(name)
        if media is None:
            raise HttpError(404, "not found", f"no such file: {GUI}/static/{name}")
        return Response(
            _asset(name), media_type=media, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        )

    def _admin(self, request: Request) -> None:
        self.access.require_admin(request, "the GUI shows the whole mesh: it needs an admin client (admin token)")

    async def session(self, request: Request) -> Response:
        self._admin(request)
        info = self.src.info
        kinds = [{"name": rt.name, "plural": rt.plural} for rt in types_where(policy=True)]
        body = {
            "version": info.version,
            "mode": info.mode,
            "zone": info.zone,
            "federated": info.federated,
            "readOnlyKinds": views.read_only_kinds(info),
            "policyKinds": kinds,
        }
        return respond(request, body)

    def view(self, build: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            self._admin(request)
            return respond(request, await build(request), headers=NO_STORE)

        return handler

    async def zones(self, request: Request) -> Any:
        return await views.zones(self.src)

    async def meshes(self, request: Request) -> Any:
        return await views.meshes(self.src)

    async def services(self, request: Request) -> Any:
        return await views.services(self.src, request.path_params["mesh"])

    async def proxies(self, request: Request) -> Any:
        query = request.query_params
        errors: list[FieldError] = []
        try:
            paging = PageRequest.of(request)
        except InvalidInput as e:  # reported with the filters' errors, all at once
            errors.extend(e.errors)
            paging = PageRequest(0, 0, "")
        filters = {}
        for key in ("zone", "service", "state"):
            value = query.get(key, "")
            if len(value) > MAX_FILTER_LENGTH:
                errors.append(FieldError(key, f"must be at most {MAX_FILTER_LENGTH} characters"))
            filters[key] = value
        if filters["state"] not in PROXY_STATES:
            errors.append(FieldError("state", "must be one of online, offline, nack (or empty)"))
        if errors:
            raise InvalidInput(errors, title="invalid query")
        f = views.ProxyFilter(
            zone=filters["zone"],
            service=filters["service"],
            state=filters["state"],
            name=paging.prefix,
            offset=paging.offset,
            size=min(paging.size, views.MAX_PAGE),
        )
        return await views.proxies(self.src, request.path_params["mesh"], f)

    async def rollout(self, request: Request) -> Any:
        mesh = request.path_params["mesh"]
        await self.src.store.get("Mesh", mesh)
        kind, name = request.query_params.get("kind", ""), request.query_params.get("name", "")
        if not kind or not name:
            latest = await views.latest_policy(self.src, mesh)
            if latest is None:
                return {"mesh": mesh, "kind": None, "name": None, "zones": [], "items": []}
            kind, name = latest["kind"], latest["name"]
        if kind not in {rt.name for rt in types_where(policy=True)}:
            raise InvalidInput(FieldError("kind", f'"{kind[:60]}" is not a policy kind'), title="invalid query")
        return await views.rollout(self.src, mesh, kind, name)

    async def event_stream(self, request: Request) -> Response:
        self._admin(request)
        client = self.events.subscribe()
        if client is None:
            raise HttpError(503, "too many live clients", f"at most {self.events.max_clients} GUI pages follow events")

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield b": connected\n\n"
                while True:
                    batch = await client.next_batch(HEARTBEAT_SECONDS, SETTLE_SECONDS)
                    if batch is None:
                        return
                    if not batch:
                        yield b": heartbeat\n\n"
                        continue
                    yield b"data: " + json.dumps({"changed": sorted(batch)}).encode() + b"\n\n"
            finally:
                self.events.unsubscribe(client)

        headers = {**NO_STORE, "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def add_gui_routes(router: APIRouter, routes: GuiRoutes) -> None:
    for path in (GUI, GUI + "/"):
        router.add_api_route(path, routes.page, methods=["GET"], include_in_schema=False)
    router.add_api_route(STATIC, routes.static, methods=["GET"], include_in_schema=False)
    router.add_api_route(GUI_API + "/session", routes.session, methods=["GET"], include_in_schema=False)
    router.add_api_route(GUI_API + "/events", routes.event_stream, methods=["GET"], include_in_schema=False)
    for path, build in (
        ("/zones", routes.zones),
        ("/meshes", routes.meshes),
        ("/meshes/{mesh}/services", routes.services),
        ("/meshes/{mesh}/proxies", routes.proxies),
        ("/meshes/{mesh}/rollout", routes.rollout),
    ):
        router.add_api_route(GUI_API + path, routes.view(build), methods=["GET"], include_in_schema=False)


class BrowserRedirect:
    """ASGI middleware: ``GET /`` asking for HTML is redirected to the GUI; everything else passes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
            accept = dict(scope["headers"]).get(b"accept", b"")
            if b"text/html" in accept:
                await RedirectResponse(GUI + "/", status_code=307)(scope, receive, send)
                return
        await self.app(scope, receive, send)
