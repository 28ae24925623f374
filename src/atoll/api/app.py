"""The REST API of a control plane: Kuma-shaped resource CRUD over a ``Store``, and what roles add.

``create_app(ApiDependencies(...))`` builds a FastAPI app from one module of routes per concern,
each given only the dependencies it uses; it holds no global state. Their routes are added to the
app's router in this order, which is the order Starlette tries them in (a route shadows later ones
that match the same path):

0. ``overviews``: Kuma's ``_overview`` and insight routes (``/zones/_overview`` before ``/zones/{name}``),
   then ``control_planes`` (``/control-planes``).
1. ``resources``: ``/``, ``/_resources``, then list/get/put/delete of every resource type (and the
   same at the types' older plurals).
2. ``insights``: the ``+insights`` lists and a proxy's xDS config, config dump and stats.
3. ``policy_routes``: policy inspection (a proxy's policies, a policy's proxies).
4. ``proxy_routes``: ``/bootstrap`` and the agents' ``/dp/*`` endpoints.
5. ``tokens``: ``/tokens/*`` (admin only).
6. ``resources.add_fallback_routes``: the catch-all naming known types under ``/meshes/{mesh}/``.

The routes go straight into the app's own ``APIRouter`` rather than into included routers, so the
route list stays one flat, ordered list: Starlette's matching and ``errors.allowed_methods`` (the
``Allow`` header of a 405) both walk it.

Paths come from ``atoll.api.paths``; errors are mapped to HTTP in ``atoll.api.errors`` only;
``/openapi.json`` describes every route and resource type (``atoll.api.openapi``). With ``metrics``,
every request is counted by method, route template and status (``atoll.api.metrics``).
"""

from __future__ import annotations

from fastapi import FastAPI

from atoll.api import paths
from atoll.api.control_planes import add_control_plane_routes
from atoll.api.deps import ApiDependencies, ApiInfo, is_loopback_admin
from atoll.api.errors import install_error_handlers
from atoll.api.insights import InsightRoutes, add_insight_routes
from atoll.api.metrics import RequestMetrics
from atoll.api.openapi import OpenApiApp
from atoll.api.overviews import OverviewRoutes, add_overview_routes
from atoll.api.policy_routes import PolicyRoutes, add_policy_routes
from atoll.api.proxy_routes import ProxyRoutes, add_proxy_routes
from atoll.api.resources import PRODUCT, ResourceRoutes, add_fallback_routes, add_resource_routes
from atoll.api.tokens import add_token_routes
from atoll.api.wire import Access
from atoll.api.writes import ResourceWriter
from atoll.resources.types import all_types

__all__ = ["ApiDependencies", "ApiInfo", "create_app", "is_loopback_admin"]


def create_app(deps: ApiDependencies) -> FastAPI:
    """The REST API app over ``deps.store``, serving ``deps.types`` (default: every registered type)."""
    types = deps.types if deps.types is not None else tuple(all_types())
    app = OpenApiApp(
        types,
        title=f"{PRODUCT} control plane API",
        version=deps.info.version,
        docs_url=None,
        redoc_url=None,
        openapi_url=paths.OPENAPI,
    )
    install_error_handlers(app)
    if deps.metrics is not None:
        app.add_middleware(RequestMetrics, metrics=deps.metrics)
    access = Access(deps.is_admin)
    resources = ResourceRoutes(
        store=deps.store,
        info=deps.info,
        access=access,
        writer=ResourceWriter(deps.store, deps.initial_policies),
        types=types,
        max_body_bytes=deps.max_body_bytes,
    )
    insights = InsightRoutes(
        store=deps.store,
        access=access,
        proxies=deps.proxies,
        dataplane_insights=deps.dataplane_insights,
        zone_insights=deps.zone_insights,
        no_proxies=deps.info.no_proxies,
    )
    proxies = ProxyRoutes(
        proxies=deps.proxies,
        bootstrap=deps.bootstrap_handler(),
        no_proxies=deps.info.no_proxies,
        max_body_bytes=deps.max_body_bytes,
    )
    overviews = OverviewRoutes(
        store=deps.store,
        proxies=deps.proxies,
        dataplane_insights=deps.dataplane_insights,
        zone_insights=deps.zone_insights,
    )
    add_overview_routes(app.router, overviews)
    add_control_plane_routes(app.router, deps.control_planes)
    add_resource_routes(app.router, resources)
    add_insight_routes(app.router, insights)
    add_policy_routes(app.router, PolicyRoutes(store=deps.store))
    add_proxy_routes(app.router, proxies)
    add_token_routes(app.router, deps.tokens, access, deps.max_body_bytes)
    add_fallback_routes(app.router, types)
    return app
