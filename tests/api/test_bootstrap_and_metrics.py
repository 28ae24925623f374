"""``POST /bootstrap`` delegation, request/store metrics, and the diagnostics app in process."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from atoll.api.diagnostics import create_diagnostics_app
from atoll.api.metrics import Metrics
from atoll.errors import FieldError, InvalidInput
from atoll.store import Store
from tests.api.conftest import ClientFactory, dataplane, put_mesh


async def test_bootstrap_without_a_handler_is_404(api: httpx.AsyncClient) -> None:
    r = await api.post("/bootstrap", json={"mesh": "default", "name": "web"})
    assert r.status_code == 404
    assert r.json()["details"] == "this control plane serves no proxies"


async def test_bootstrap_delegates_to_the_handler(make_client: ClientFactory) -> None:
    seen: list[dict[str, Any]] = []

    async def handler(body: dict[str, Any], cp_host: str) -> dict[str, Any]:
        assert cp_host  # the host name the client used, for the bootstrap's ADS address
        seen.append(body)
        if not body.get("name"):
            raise InvalidInput(FieldError("name", "required"), title="invalid bootstrap request")
        return {"bootstrap": {"node": {"id": f"{body['mesh']}.{body['name']}"}}}

    api = await make_client(bootstrap=handler, max_body_bytes=1000)
    r = await api.post("/bootstrap", json={"mesh": "default", "name": "web"})
    assert r.status_code == 200, r.text
    assert r.json() == {"bootstrap": {"node": {"id": "default.web"}}}
    assert seen == [{"mesh": "default", "name": "web"}]

    r = await api.post("/bootstrap", json={"mesh": "default"})
    assert r.status_code == 400
    assert r.json()["invalid_parameters"] == [{"field": "name", "reason": "required"}]
    assert r.json()["title"] == "invalid bootstrap request"

    r = await api.post("/bootstrap", json=["not", "an", "object"])
    assert r.status_code == 400
    assert r.json()["details"] == "the bootstrap request must be a JSON object"
    r = await api.post("/bootstrap", content="mesh: default", headers={"content-type": "application/yaml"})
    assert r.status_code == 415
    r = await api.post("/bootstrap", json={"pad": "x" * 2000})
    assert r.status_code == 413
    assert len(seen) == 2


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_count_requests_by_route_and_store_operations(
    api: httpx.AsyncClient, metrics: Metrics, store: Store
) -> None:
    await put_mesh(api)
    for name in ("a", "b"):
        assert (await api.put(f"/meshes/default/dataplanes/{name}", json=dataplane(name))).status_code == 201
    assert (await api.get("/meshes/default/dataplanes/zzz")).status_code == 404
    assert (await api.get("/no/such/path")).status_code == 404

    diag = create_diagnostics_app(lambda: True, metrics, store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=diag), base_url="http://diag") as c:
        r = await c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    s = samples(r.text)
    route = "/meshes/{mesh}/dataplanes/{name}"
    assert s[("atoll_api_requests_total", (("method", "PUT"), ("route", route), ("status", "201")))] == 2
    assert s[("atoll_api_requests_total", (("method", "GET"), ("route", route), ("status", "404")))] == 1
    assert s[("atoll_api_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    assert s[("atoll_api_request_duration_seconds_count", (("method", "PUT"), ("route", route)))] == 2
    # the two dataplanes are creates; the mesh is one ``apply`` with its initial policies
    assert s[("atoll_store_operations_total", (("operation", "create"), ("outcome", "ok")))] >= 2
    assert s[("atoll_store_operations_total", (("operation", "apply"), ("outcome", "ok")))] >= 1
    assert s[("atoll_store_operations_total", (("operation", "get"), ("outcome", "not_found")))] >= 1
    assert s[("atoll_resources", (("type", "Dataplane"),))] == 2
    assert s[("atoll_resources", (("type", "Mesh"),))] == 1
    assert s[("atoll_resources", (("type", "Zone"),))] == 0


async def test_diagnostics_ready_follows_the_readiness_function(metrics: Metrics) -> None:
    state = {"ready": False}
    diag = create_diagnostics_app(lambda: state["ready"], metrics)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=diag), base_url="http://diag") as c:
        assert (await c.get("/ready")).status_code == 503
        assert (await c.get("/healthy")).status_code == 200
        state["ready"] = True
        assert (await c.get("/ready")).status_code == 200
        state["ready"] = False
        assert (await c.get("/ready")).status_code == 503
