"""Fixtures of the REST API tests: a memory store and an in-process HTTP client for the app.

``api`` is an ``httpx.AsyncClient`` on the ASGI app (client address 127.0.0.1, so an admin);
``make_client`` builds clients with other options (a non-loopback address, a bootstrap handler,
another mode). ``snapshot`` captures the whole store, so error tests can prove nothing changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from atoll.api.app import ApiDependencies, ApiInfo, create_app
from atoll.api.metrics import InstrumentedStore, Metrics
from atoll.resources import all_types, encode
from atoll.store import ListFilter, Store, open_store

ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each API test runs against the memory store and a real SQLite file."""
    s = await open_store(request.param, path=tmp_path / "atoll.db" if request.param == "sqlite" else None)
    yield s
    await s.close()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def make_client(store: Store, metrics: Metrics) -> AsyncIterator[ClientFactory]:
    clients: list[httpx.AsyncClient] = []

    async def make(*, client_addr: str = "127.0.0.1", info: ApiInfo | None = None, **options: Any) -> httpx.AsyncClient:
        deps = ApiDependencies(
            InstrumentedStore(store, metrics), info or ApiInfo(version="test"), metrics=metrics, **options
        )
        app = create_app(deps)
        transport = httpx.ASGITransport(app=app, client=(client_addr, 40000))
        c = httpx.AsyncClient(transport=transport, base_url="http://atoll.test")
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.aclose()


@pytest.fixture
async def api(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client()


async def snapshot(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every stored resource (with versions), by type: equal snapshots mean an unchanged store."""
    out: dict[str, list[dict[str, Any]]] = {}
    for rt in all_types():
        page = await store.list(ListFilter(type=rt.name))
        if page.items:
            out[rt.name] = [{**encode(r), "version": r.meta.version} for r in page.items]
    return out


MESH_YAML = "type: Mesh\nname: {name}\n"

DATAPLANE_YAML = """\
type: Dataplane
mesh: {mesh}
name: {name}
networking:
  address: 192.168.0.1
  inbound:
    - port: 8080
      servicePort: 8080
      tags:
        kuma.io/service: web
        kuma.io/protocol: http
"""

YAML = {"content-type": "application/yaml"}


def dataplane(name: str, mesh: str = "default", address: str = "192.168.0.1") -> dict[str, Any]:
    return {
        "type": "Dataplane",
        "mesh": mesh,
        "name": name,
        "networking": {
            "address": address,
            "inbound": [{"port": 8080, "servicePort": 8080, "tags": {"kuma.io/service": "web"}}],
        },
    }


async def put_mesh(api: httpx.AsyncClient, name: str = "default") -> None:
    r = await api.put(f"/meshes/{name}", content=MESH_YAML.format(name=name), headers=YAML)
    assert r.status_code == 201, r.text
