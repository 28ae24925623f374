"""``atoll.api.paths``: light to import for clients, and every path it builds is a route the app serves."""

from __future__ import annotations

import subprocess
import sys
from urllib.parse import unquote

import pytest
from fastapi import FastAPI
from starlette.routing import Match

from atoll.api import paths
from atoll.api.app import ApiDependencies, ApiInfo, create_app
from atoll.api.errors import FALLBACK_ROUTE
from atoll.resources import all_types
from atoll.store import Store

CLIENTS = (
    "atoll.api.paths",
    "atoll.cli.client",
    "atoll.cli.main",
    "atoll.dp.cp_client",
    "atoll.dp.admin_responder",
    "atoll.dp",
)


@pytest.mark.parametrize("module", CLIENTS)
def test_clients_load_no_web_server(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "heavy = sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "", f"importing {module} loads {out.stdout.strip()}"


def served_route(app: FastAPI, method: str, url: str) -> str | None:
    """The template of the first route that fully matches ``method url`` (``None``: only a fallback)."""
    scope = {"type": "http", "method": method, "path": unquote(url), "root_path": ""}
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return None if getattr(route, "name", None) == FALLBACK_ROUTE else str(getattr(route, "path", ""))
    return None


@pytest.mark.parametrize("mesh", ["default", "m 1"])
async def test_every_client_path_is_a_served_route(store: Store, mesh: str) -> None:
    app = create_app(ApiDependencies(store, ApiInfo(version="t")))
    for rt in all_types():
        in_mesh = mesh if rt.mesh_scoped else None
        collection = paths.collection_template(rt)
        assert served_route(app, "GET", paths.collection_path(rt, in_mesh)) == collection, rt.name
        assert served_route(app, "GET", paths.collection_path(rt, None)) == paths.all_meshes_template(rt), rt.name
        for method in ("GET", "PUT", "DELETE"):
            url = paths.item_path(rt, "web 1", in_mesh)
            assert served_route(app, method, url) == paths.item_template(rt), (rt.name, method)
    fixed = {
        ("GET", paths.expand(paths.DATAPLANES_INSIGHTS, mesh=mesh)): paths.DATAPLANES_INSIGHTS,
        ("GET", paths.expand(paths.DATAPLANE_XDS, mesh=mesh, name="web 1")): paths.DATAPLANE_XDS,
        ("GET", paths.expand(paths.DATAPLANE_CONFIG_DUMP, mesh=mesh, name="w")): paths.DATAPLANE_CONFIG_DUMP,
        ("GET", paths.expand(paths.DATAPLANE_STATS, mesh=mesh, name="w")): paths.DATAPLANE_STATS,
        ("GET", paths.ZONES_INSIGHTS): paths.ZONES_INSIGHTS,
        ("GET", paths.ZONE_EGRESSES_INSIGHTS): paths.ZONE_EGRESSES_INSIGHTS,
        ("POST", paths.BOOTSTRAP): paths.BOOTSTRAP,
        ("POST", paths.DP_HEALTH): paths.DP_HEALTH,
        ("GET", paths.DP_REQUESTS): paths.DP_REQUESTS,
        ("POST", paths.DP_RESPONSES): paths.DP_RESPONSES,
        ("POST", paths.TOKENS_DATAPLANE): paths.TOKENS_DATAPLANE,
        ("POST", paths.TOKENS_ZONE): paths.TOKENS_ZONE,
        ("POST", paths.TOKENS_REVOCATIONS): paths.TOKENS_REVOCATIONS,
        ("GET", paths.ROOT): paths.ROOT,
        ("GET", paths.RESOURCE_TYPES): paths.RESOURCE_TYPES,
        ("GET", paths.OPENAPI): paths.OPENAPI,
    }
    for (method, url), template in fixed.items():
        assert served_route(app, method, url) == template, (method, url)


def test_expand_encodes_each_value_as_one_segment() -> None:
    assert paths.expand(paths.DATAPLANE_XDS, mesh="a/b", name="c d") == "/meshes/a%2Fb/dataplanes/c%20d/xds"
    with pytest.raises(ValueError, match="mesh-scoped"):
        paths.item_path(next(rt for rt in all_types() if rt.mesh_scoped), "x")
