"""The GUI's server side in process: the page and the ``/`` redirect, admin-only views, the same
numbers as the REST API, EDS traffic shares, server-side paging and filters, the bounded event
stream, and the page time with 1,000 proxies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from atoll.api.app import ApiDependencies, ApiInfo, create_app
from atoll.gui import LiveEvents, mount_gui
from atoll.resources import decode
from atoll.security.admin import AdminAuth
from atoll.store import Store, open_store
from tests.helpers import await_until, free_port

TOKEN = "gui-test-admin-token-0123456789"
MESH = "default"


def mtls_mesh() -> dict[str, Any]:
    return {
        "type": "Mesh",
        "name": MESH,
        "skipCreatingInitialPolicies": ["*"],
        "mtls": {"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]},
    }


def dataplane(name: str, zone: str, service: str, *, ready: bool = True, outbound: str | None = None) -> dict[str, Any]:
    inbound: dict[str, Any] = {"port": 8080, "tags": {"kuma.io/service": service, "kuma.io/protocol": "http"}}
    if not ready:
        inbound["health"] = {"ready": False}
    return {
        "type": "Dataplane",
        "mesh": MESH,
        "name": f"{name}-{zone}",
        "labels": {"kuma.io/origin": "zone", "kuma.io/zone": zone, "kuma.io/display-name": name},
        "networking": {
            "address": "10.0.0.1",
            "inbound": [inbound],
            "outbound": [{"port": 20000, "tags": {"kuma.io/service": outbound}}] if outbound else [],
        },
    }


def ingress(zone: str, instances: dict[str, int]) -> dict[str, Any]:
    return {
        "type": "ZoneIngress",
        "name": f"ingress-{zone}",
        "labels": {"kuma.io/origin": "zone", "kuma.io/zone": zone},
        "zone": zone,
        "networking": {"address": "10.1.0.1", "port": 10001, "advertisedAddress": "10.1.0.1", "advertisedPort": 10001},
        "availableServices": [
            {"tags": {"kuma.io/service": s, "kuma.io/protocol": "http"}, "instances": n, "mesh": MESH}
            for s, n in instances.items()
        ],
    }


def insight(online: bool, nacks: int = 0) -> dict[str, Any]:
    t = "2026-01-01T00:00:00.000Z"
    xds = {"lds": {"lastSentVersion": "v2", "lastAckedVersion": "v1" if nacks else "v2", "inSync": not nacks}}
    xds["lds"].update({"lastAckedAt": t, "acks": 1, "nacks": nacks, "lastNackError": "bad listener" if nacks else None})
    return {"online": online, "envoyVersion": "1.40.0", "nackCount": nacks, "xds": xds}


class Fixture:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.insights: dict[tuple[str, str], dict[str, Any]] = {}
        self.zone_state = {"zone-1": True, "zone-2": True}
        self.zone_version = {"zone-1": "test", "zone-2": "test"}

    def dataplane_insight(self, mesh: str, name: str) -> dict[str, Any] | None:
        return self.insights.get((mesh, name))

    async def zone_insight(self, zone: str) -> dict[str, Any]:
        return {"online": self.zone_state[zone], "cpVersion": self.zone_version[zone], "lastSync": {}}

    async def put(self, doc: dict[str, Any]) -> None:
        await self.store.create(decode(doc))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await open_store("sqlite", path=tmp_path / "atoll.db")
    yield s
    await s.close()


@pytest.fixture
async def world(store: Store) -> Fixture:
    f = Fixture(store)
    await f.put(mtls_mesh())
    for z in ("zone-1", "zone-2"):
        await f.put({"type": "Zone", "name": z})
    await f.put(dataplane("web", "zone-1", "web", outbound="backend"))
    await f.put(dataplane("backend", "zone-1", "backend"))
    await f.put(dataplane("backend", "zone-2", "backend"))
    await f.put(dataplane("backend-b", "zone-2", "backend"))
    await f.put(dataplane("backend-c", "zone-2", "backend", ready=False))
    await f.put(ingress("zone-1", {"backend": 1, "web": 1}))
    await f.put(ingress("zone-2", {"backend": 2}))
    f.insights[(MESH, "web-zone-1")] = insight(True)
    f.insights[(MESH, "backend-zone-1")] = insight(True, nacks=2)
    f.insights[(MESH, "backend-zone-2")] = insight(True)
    f.insights[(MESH, "backend-b-zone-2")] = insight(False)
    return f


async def gui_client(
    f: Fixture, *, client_addr: str = "127.0.0.1", headers: dict[str, str] | None = None
) -> tuple[httpx.AsyncClient, LiveEvents]:
    deps = ApiDependencies(
        f.store,
        ApiInfo(version="test", mode="global"),
        dataplane_insights=f.dataplane_insight,
        zone_insights=f.zone_insight,
        is_admin=AdminAuth(TOKEN),
    )
    app = create_app(deps)
    events = mount_gui(app, deps)
    transport = httpx.ASGITransport(app=app, client=(client_addr, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://atoll.test", headers=headers), events


async def test_page_and_browser_redirect(world: Fixture) -> None:
    api, _ = await gui_client(world)
    async with api:
        page = await api.get("/gui/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<form id="login-form">' in page.text and "/gui/static/gui.js" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        for name, media in (("gui.js", "text/javascript"), ("pages.js", "text/javascript"), ("gui.css", "text/css")):
            r = await api.get(f"/gui/static/{name}")
            assert r.status_code == 200 and r.headers["content-type"].startswith(media)
        assert (await api.get("/gui/static/..%2Fviews.py")).status_code == 404
        browser = await api.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        assert browser.status_code == 307 and browser.headers["location"] == "/gui/"
        client = await api.get("/", headers={"Accept": "application/json"})  # kumactl's version check
        assert client.status_code == 200 and client.json()["version"] == "test"
        assert (await api.get("/")).json()["product"] == "Atoll"


async def test_remote_client_needs_the_admin_token(world: Fixture) -> None:
    remote, _ = await gui_client(world, client_addr="192.0.2.10")
    async with remote:
        page = await remote.get("/gui/")
        assert page.status_code == 200  # the login page, which holds no data
        assert "backend" not in page.text and "zone-1" not in page.text
        for path in ("/gui/api/session", "/gui/api/zones", f"/gui/api/meshes/{MESH}/proxies", "/gui/api/events"):
            r = await remote.get(path)
            assert r.status_code == 401, (path, r.text)
            assert "backend" not in r.text
        wrong = await remote.get("/gui/api/zones", headers={"Authorization": "Bearer not-the-token-at-all"})
        assert wrong.status_code == 401
    admin, _ = await gui_client(world, client_addr="192.0.2.10", headers={"Authorization": f"Bearer {TOKEN}"})
    async with admin:
        r = await admin.get("/gui/api/session")
        assert r.status_code == 200 and r.json()["mode"] == "global"
        assert "Dataplane" in r.json()["readOnlyKinds"]  # zone-owned kinds are read-only at global


async def test_zones_and_proxies_match_the_rest_api(world: Fixture) -> None:
    api, _ = await gui_client(world)
    async with api:
        zones = {z["name"]: z for z in (await api.get("/gui/api/zones")).json()["items"]}
        rest = {z["name"]: z["zoneInsight"] for z in (await api.get("/zones+insights")).json()["items"]}
        assert {n: z["zoneInsight"] for n, z in zones.items()} == rest
        listed = (await api.get(f"/meshes/{MESH}/dataplanes+insights")).json()["items"]
        for zone in ("zone-1", "zone-2"):
            mine = [d for d in listed if d["labels"]["kuma.io/zone"] == zone]
            online = sum(bool(d["dataplaneInsight"]["online"]) for d in mine)
            assert zones[zone]["proxies"] == {"online": online, "total": len(mine)}
        assert zones["zone-2"]["proxies"] == {"online": 1, "total": 3}
        assert zones["zone-1"]["ingresses"]["names"] == ["ingress-zone-1"]
        assert zones["zone-1"]["warnings"] == []
        world.zone_version["zone-1"] = "older"
        world.zone_state["zone-2"] = False
        zones = {z["name"]: z for z in (await api.get("/gui/api/zones")).json()["items"]}
        assert zones["zone-1"]["warnings"] == ["out of date: runs older, global runs test"]
        assert zones["zone-2"]["warnings"][0].startswith("offline")
        assert zones["zone-2"]["ingresses"]["online"] == 0
        world.zone_version["zone-1"], world.zone_state["zone-2"] = "test", True

        everything = (await api.get(f"/gui/api/meshes/{MESH}/proxies")).json()
        by_name = {d["name"]: d["dataplaneInsight"] for d in everything["items"]}
        assert by_name == {d["name"]: d["dataplaneInsight"] for d in listed}
        q = f"/gui/api/meshes/{MESH}/proxies"
        assert [d["name"] for d in (await api.get(q, params={"state": "nack"})).json()["items"]] == ["backend-zone-1"]
        assert (await api.get(q, params={"state": "offline"})).json()["total"] == 2  # b-zone-2, c-zone-2
        assert (await api.get(q, params={"zone": "zone-2", "service": "backend"})).json()["total"] == 3
        assert (await api.get(q, params={"service": "web"})).json()["items"][0]["displayName"] == "web"
        page = (await api.get(q, params={"size": 2, "offset": 2})).json()
        assert page["total"] == 5 and len(page["items"]) == 2
        bad = await api.get(q, params={"state": "sideways", "size": "x"})
        assert bad.status_code == 400 and "state" in bad.text and "size" in bad.text


async def test_services_show_instances_and_eds_shares(world: Fixture) -> None:
    api, _ = await gui_client(world)
    async with api:
        body = (await api.get(f"/gui/api/meshes/{MESH}/services")).json()
        backend = next(s for s in body["items"] if s["service"] == "backend")
        assert backend["instances"] == {"zone-1": {"ready": 1, "total": 1}, "zone-2": {"ready": 2, "total": 3}}
        assert backend["protocol"] == "http"
        assert backend["reachableFrom"] == ["zone-1", "zone-2"]
        # from zone-1: its own instance (weight 1) and zone-2's ingress listing 2 instances (weight 2)
        assert backend["trafficShare"]["zone-1"] == {"zone-1": 1, "zone-2": 2}
        assert backend["trafficShare"]["zone-2"] == {"zone-1": 1, "zone-2": 2}
        web = next(s for s in body["items"] if s["service"] == "web")
        assert web["trafficShare"] == {"zone-1": {"zone-1": 1}, "zone-2": {"zone-1": 1}}


async def test_rollout_states(world: Fixture) -> None:
    api, _ = await gui_client(world)
    async with api:
        policy = {
            "type": "MeshTimeout",
            "mesh": MESH,
            "name": "backend-timeouts",
            "spec": {
                "targetRef": {"kind": "MeshService", "name": "backend"},
                "to": [{"targetRef": {"kind": "Mesh"}, "default": {"connectionTimeout": "2s"}}],
            },
        }
        assert (await api.put(f"/meshes/{MESH}/meshtimeouts/backend-timeouts", json=policy)).status_code == 201
        world.insights[(MESH, "backend-zone-2")]["xds"]["lds"]["lastAckedAt"] = "2999-01-01T00:00:00.000Z"
        r = (await api.get(f"/gui/api/meshes/{MESH}/rollout")).json()  # the latest policy by default
        assert (r["kind"], r["name"]) == ("MeshTimeout", "backend-timeouts")
        states = {d["name"]: d["state"] for d in r["items"]}
        reach = (await api.get(f"/meshes/{MESH}/meshtimeouts/backend-timeouts/_resources/dataplanes")).json()
        assert sorted(states) == sorted(i["dataplane"] for i in reach["items"])
        assert states["backend-zone-1"] == "NACKed"
        assert states["backend-zone-2"] == "ACKed"  # acked after the change
        assert states["backend-b-zone-2"] == "pending"  # offline
        zones = {z["zone"]: z for z in r["zones"]}
        assert zones["zone-1"]["state"] == "NACKed" and zones["zone-2"]["state"] == "pending"
        assert zones["zone-2"]["ACKed"] == 1 and zones["zone-2"]["total"] == 3
        bad = await api.get(f"/gui/api/meshes/{MESH}/rollout", params={"kind": "Nope", "name": "x"})
        assert bad.status_code == 400


async def test_event_stream_is_bounded_and_closes_on_stop(world: Fixture) -> None:
    events = LiveEvents(world.store, max_clients=2)
    task = asyncio.create_task(events.start())
    try:
        deadline = time.monotonic() + 10
        while not events.ready:
            assert time.monotonic() < deadline, "events never became ready"
            await asyncio.sleep(0.01)
        a, b = events.subscribe(), events.subscribe()
        assert a is not None and b is not None and events.subscribe() is None  # the client cap
        assert (await a.next_batch(0.05, 0)) == set()  # heartbeat: nothing changed
        for i in range(200):  # a burst is a bounded set of names, not 200 queued events
            await world.put({"type": "Zone", "name": f"z-{i}"})
        assert (await asyncio.wait_for(a.next_batch(5, 0.05), 10)) == {"Zone"}
        assert len(b.changed) <= 1
        await events.stop()
        assert (await asyncio.wait_for(b.next_batch(5, 0), 5)) is None
        await asyncio.wait_for(task, 10)
        assert events.clients == 0
    finally:
        await events.stop()
        await asyncio.wait_for(task, 10)


@pytest.mark.timeout(60)
async def test_event_stream_route(world: Fixture) -> None:
    """Over a real HTTP server (an in-process ASGI transport buffers whole answers)."""
    deps = ApiDependencies(
        world.store,
        ApiInfo(version="test", mode="global"),
        dataplane_insights=world.dataplane_insight,
        zone_insights=world.zone_insight,
    )
    app = create_app(deps)
    events = mount_gui(app, deps)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None))
    serving = asyncio.create_task(server.serve())
    task = asyncio.create_task(events.start())
    try:
        await await_until(lambda: server.started and events.ready, timeout=20, what="server and events up")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as api:
            async with api.stream("GET", "/gui/api/events") as resp:
                assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
                lines = resp.aiter_lines()
                assert await asyncio.wait_for(anext(lines), 10) == ": connected"

                async def next_message() -> str:
                    while not (line := await asyncio.wait_for(anext(lines), 10)).startswith("data:"):
                        pass
                    return line

                # the first read of the zones' state after nobody followed is reported: whatever changed
                # between the page's load and that read reaches the page
                assert '"live"' in await next_message()
                world.zone_state["zone-2"] = False  # the zones' pulse notices, without any store write
                assert '"live"' in await next_message()
                await events.stop()  # shutdown ends the stream
                with pytest.raises(StopAsyncIteration):
                    while True:
                        await asyncio.wait_for(anext(lines), 10)
    finally:
        await events.stop()
        await asyncio.wait_for(task, 10)
        server.should_exit = True
        await asyncio.wait_for(serving, 20)


async def test_a_thousand_proxies_page_fast(store: Store) -> None:
    f = Fixture(store)
    await f.put(mtls_mesh())
    for z in ("zone-1", "zone-2"):
        await f.put({"type": "Zone", "name": z})
    for i in range(1000):
        zone = "zone-1" if i % 2 else "zone-2"
        await f.put(dataplane(f"svc-{i:04d}", zone, f"svc-{i % 50}", outbound=f"svc-{(i + 1) % 50}"))
        f.insights[(MESH, f"svc-{i:04d}-{zone}")] = insight(i % 3 != 0, nacks=int(i % 97 == 0))
    api, _ = await gui_client(f)
    timings = {}
    async with api:
        for name, path, params in (
            ("proxies page", f"/gui/api/meshes/{MESH}/proxies", {"size": "50"}),
            ("proxies filtered", f"/gui/api/meshes/{MESH}/proxies", {"zone": "zone-1", "state": "nack"}),
            ("zones", "/gui/api/zones", {}),
            ("services", f"/gui/api/meshes/{MESH}/services", {}),
        ):
            await api.get(path, params=params)  # warm
            best = float("inf")
            for _ in range(3):  # the best of three: the machine is shared with other work
                start = time.perf_counter()
                r = await api.get(path, params=params)
                best = min(best, time.perf_counter() - start)
                assert r.status_code == 200, r.text
            timings[name] = best
        page = (await api.get(f"/gui/api/meshes/{MESH}/proxies", params={"size": "50"})).json()
        assert page["total"] == 1000 and len(page["items"]) == 50
    print("GUI page times with 1,000 proxies:", {k: f"{v * 1000:.0f} ms" for k, v in timings.items()})
    assert all(t < 3.0 for t in timings.values()), timings  # generous: the test machine is shared
