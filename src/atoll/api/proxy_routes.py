"""Routes for proxies and their agents: ``/bootstrap`` and ``/dp/*`` (zone and standalone CPs).

- ``POST /bootstrap``: the JSON body to the ``BootstrapHandler`` with the host name the proxy used
  (so ADS is reached at the same host); its answer is the response body.
- ``POST /dp/health``: an agent's report of its inbounds' health, to ``ProxyEndpoints.report_health``.
- ``GET /dp/requests?mesh=&name=&wait=``: an agent's long poll (``wait`` seconds, 0..30, default 20)
  for Envoy admin requests; 204 when none came. ``x-atoll-token`` carries its dataplane token.
- ``POST /dp/responses``: the agent's answer ``{id, mesh, name, status, body}`` to one such request,
  with the same token; taken only for a request sent to that proxy (404 otherwise).

A CP that serves no proxies (global) answers 404 on each, saying so. Bodies must be JSON objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from atoll.api import openapi, paths
from atoll.api.deps import BootstrapHandler, ProxyEndpoints
from atoll.api.errors import HttpError
from atoll.api.wire import json_object
from atoll.errors import FieldError, InvalidInput

MAX_POLL_WAIT = 30.0
DEFAULT_POLL_WAIT = "20"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyRoutes:
    """The handlers of the proxies' routes."""

    proxies: ProxyEndpoints | None
    bootstrap: BootstrapHandler | None
    no_proxies: str  # why every route here answers 404 when the CP serves no proxies
    max_body_bytes: int

    def _served(self) -> ProxyEndpoints:
        if self.proxies is None:
            raise HttpError(404, "not found", self.no_proxies)
        return self.proxies

    async def post_bootstrap(self, request: Request) -> Response:
        if self.bootstrap is None:
            raise HttpError(404, "not found", self.no_proxies)
        doc = await json_object(request, "bootstrap request", self.max_body_bytes)
        return JSONResponse(await self.bootstrap(doc, request.url.hostname or "127.0.0.1"))

    async def post_health(self, request: Request) -> Response:
        proxies = self._served()
        doc = await json_object(request, "health report", self.max_body_bytes)
        return JSONResponse(await proxies.report_health(doc))

    async def dp_requests(self, request: Request) -> Response:
        proxies = self._served()
        q = request.query_params
        mesh, name = q.get("mesh"), q.get("name")
        errors = [FieldError(k, "required") for k, v in (("mesh", mesh), ("name", name)) if not v]
        try:
            wait = min(MAX_POLL_WAIT, max(0.0, float(q.get("wait", DEFAULT_POLL_WAIT))))
        except ValueError:
            errors.append(FieldError("wait", f"must be a number of seconds, got {q.get('wait')!r}"))
            wait = 0.0
        if errors:
            raise InvalidInput(errors, title="invalid poll")
        assert mesh is not None and name is not None
        req = await proxies.poll_admin_request(mesh, name, wait, request.headers.get("x-atoll-token"))
        return Response(status_code=204) if req is None else JSONResponse(req)

    async def dp_responses(self, request: Request) -> Response:
        proxies = self._served()
        doc = await json_object(request, "admin response", self.max_body_bytes)
        await proxies.admin_response(doc, request.headers.get("x-atoll-token"))
        return JSONResponse({})


def add_proxy_routes(router: APIRouter, routes: ProxyRoutes) -> None:
    posted = openapi.operation([], body="object")
    poll = openapi.operation(openapi.POLL_QUERY)
    poll["responses"].update(openapi.NO_REQUEST)
    for path, endpoint, method, extra, summary in (
        (paths.BOOTSTRAP, routes.post_bootstrap, "POST", posted, "Envoy bootstrap for a data plane proxy"),
        (paths.DP_HEALTH, routes.post_health, "POST", posted, "Health of a proxy's inbounds, reported by its agent"),
        (
            paths.DP_REQUESTS,
            routes.dp_requests,
            "GET",
            poll,
            "Long poll of a proxy's agent for Envoy admin requests",
        ),
        (paths.DP_RESPONSES, routes.dp_responses, "POST", posted, "An agent's answer to an Envoy admin request"),
    ):
        router.add_api_route(path, endpoint, methods=[method], summary=summary, openapi_extra=extra)
