"""Hostile input answers 400 naming what is wrong, never 500, and never poisons the store.

Each case was a defect: a lone surrogate stored and then failing every read of its type; a YAML alias
bomb expanded into a 69 MB error answer; 1,000-deep JSON or YAML raising ``RecursionError`` (500,
even unauthenticated on ``/bootstrap``); ``offset``/``size``/``If-Match`` read with ``str.isdigit``
(``³``, ``٣``) or without a bound; 500s echoing exception classes and messages.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from atoll.api.app import ApiDependencies, ApiInfo, create_app
from atoll.security import AdminAuth
from atoll.store import Store
from tests.api.conftest import YAML, ClientFactory, dataplane, put_mesh, snapshot

JSON = {"content-type": "application/json"}


def fields(r: httpx.Response) -> dict[str, str]:
    body = r.json()
    return {p["field"]: p["reason"] for p in body["invalid_parameters"]}


def poisoned(value: str, key: str = "version") -> dict[str, Any]:
    doc = dataplane("web")
    doc["networking"]["inbound"][0]["tags"][key] = value
    return doc


async def test_a_lone_surrogate_in_a_json_body_is_refused_naming_the_field(
    api: httpx.AsyncClient, store: Store
) -> None:
    await put_mesh(api)
    before = await snapshot(store)
    body = json.dumps(poisoned("\ud800"))  # ASCII text: the escape "\ud800" is what arrives on the wire
    r = await api.put("/meshes/default/dataplanes/web", content=body, headers=JSON)
    assert r.status_code == 400, r.text
    assert r.json()["title"] == "invalid text"
    reason = fields(r)["networking.inbound[0].tags.version"]
    assert "lone surrogate (\\ud800)" in reason
    assert await snapshot(store) == before
    listed = await api.get("/meshes/default/dataplanes")
    assert listed.status_code == 200


async def test_a_lone_surrogate_in_a_yaml_body_and_in_a_key_is_refused(api: httpx.AsyncClient, store: Store) -> None:
    await put_mesh(api)
    before = await snapshot(store)
    text = (
        "type: Dataplane\nmesh: default\nname: web\nnetworking:\n  address: 10.0.0.1\n  inbound:\n"
        '  - port: 8080\n    tags:\n      kuma.io/service: web\n      "k\\udfff": "v"\n'
    )
    r = await api.put("/meshes/default/dataplanes/web", content=text, headers=YAML)
    assert r.status_code == 400, r.text
    assert list(fields(r)) == ["networking.inbound[0].tags.k\\udfff"]
    assert await snapshot(store) == before


async def test_a_nul_in_a_string_is_refused(api: httpx.AsyncClient, store: Store) -> None:
    await put_mesh(api)
    r = await api.put("/meshes/default/dataplanes/web", json=poisoned("a\x00b"))
    assert r.status_code == 400, r.text
    assert fields(r) == {"networking.inbound[0].tags.version": "must not contain a NUL character (\\u0000)"}


def alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    lines.append(f"type: *a{levels - 1}")
    lines.append(f"name: *a{levels - 1}")
    return "\n".join(lines) + "\n"


async def test_a_yaml_alias_bomb_is_refused_at_once_with_a_short_answer(api: httpx.AsyncClient, store: Store) -> None:
    await put_mesh(api)
    before = await snapshot(store)
    bomb = alias_bomb()
    assert len(bomb) < 600
    t0 = time.monotonic()
    r = await api.put("/meshes/x", content=bomb, headers=YAML)
    elapsed = time.monotonic() - t0
    assert r.status_code == 400, r.text[:500]
    assert "aliases expand to more than 10000 nodes" in r.json()["details"]
    assert len(r.content) < 1000
    assert elapsed < 2.0
    assert await snapshot(store) == before


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        ("[" * 1000 + "]" * 1000, JSON),
        ('{"a":' * 1000 + "1" + "}" * 1000, JSON),
        ("[" * 1000 + "]" * 1000, YAML),
        ("- " * 1000 + "x", YAML),
    ],
    ids=["json-lists", "json-objects", "yaml-flow", "yaml-block"],
)
async def test_a_body_nested_1000_deep_is_a_400(
    api: httpx.AsyncClient, store: Store, content: str, headers: dict[str, str]
) -> None:
    await put_mesh(api)
    r = await api.put("/meshes/x", content=content, headers=headers)
    assert r.status_code == 400, r.text[:500]
    assert "nested deeper than 64 levels" in r.json()["details"]


async def test_bootstrap_refuses_deep_json_unauthenticated(make_client: ClientFactory) -> None:
    async def handler(doc: dict[str, Any], host: str) -> dict[str, Any]:
        return {"ok": True}

    api = await make_client(bootstrap=handler, client_addr="10.1.2.3")
    r = await api.post("/bootstrap", content="[" * 1000 + "]" * 1000, headers=JSON)
    assert r.status_code == 400, r.text[:500]
    assert r.json()["title"] == "invalid JSON"
    assert "nested deeper than 64 levels" in r.json()["details"]


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ("size=%C2%B3", "size", 'must be a whole number, got "\\xb3"'),
        ("offset=%D9%A3", "offset", 'must be a whole number, got "\\u0663"'),
        ("offset=1000000001", "offset", "must be 0..1000000000, got 1000000001"),
        ("offset=" + "9" * 30, "offset", 'must be a whole number, got "' + "9" * 30 + '"'),
        ("size=" + "9" * 5000, "size", 'must be a whole number, got "' + "9" * 40 + '..."'),
    ],
    ids=["superscript", "arabic-indic", "over-bound", "huge", "5000-digits"],
)
async def test_paging_parameters_take_ascii_digits_within_bounds(
    api: httpx.AsyncClient, query: str, field: str, reason: str
) -> None:
    r = await api.get(f"/meshes?{query}")
    assert r.status_code == 400, r.text[:500]
    assert fields(r) == {field: reason}


@pytest.mark.parametrize("value", [b"\xb2", b"1" * 30, b"9223372036854775808"])
async def test_if_match_takes_ascii_digits_within_bounds(api: httpx.AsyncClient, store: Store, value: bytes) -> None:
    await put_mesh(api)
    before = await snapshot(store)
    r = await api.put("/meshes/default", content="type: Mesh\nname: default\n", headers={**YAML, "If-Match": value})
    assert r.status_code == 400, r.text[:500]
    assert list(fields(r)) == ["If-Match"]
    assert await snapshot(store) == before


class Exploding:
    """A store whose reads fail with an exception carrying a secret-looking message."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom at /var/lib/secret-path")


async def test_a_500_names_a_request_id_logs_one_line_and_echoes_nothing(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(ApiDependencies(Exploding(store), ApiInfo(version="test")))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    caplog.set_level(logging.INFO)
    async with httpx.AsyncClient(transport=transport, base_url="http://atoll.test") as api:
        r = await api.get("/meshes/default")
    assert r.status_code == 500
    request_id = r.headers["x-request-id"]
    assert "RuntimeError" not in r.text and "secret-path" not in r.text and "boom" not in r.text
    assert request_id in r.json()["details"]
    errors = [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert len(errors) == 1, [rec.getMessage() for rec in errors]
    line = errors[0].getMessage()
    assert request_id in line and "RuntimeError" in line and "\n" not in line
    assert errors[0].exc_info is None


@pytest.mark.parametrize("client", ["10.1.2.3", "127.0.0.1"])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-wrong-token"])
async def test_a_401_names_the_token_file_only_to_a_loopback_client(
    make_client: ClientFactory, client: str, authorization: str | None
) -> None:
    auth = AdminAuth("x" * 32, loopback_admin=False, token_file=Path("/srv/atoll/admin-token"))
    api = await make_client(is_admin=auth, client_addr=client)
    headers = {"authorization": authorization} if authorization else {}
    r = await api.put("/meshes/m", content="type: Mesh\nname: m\n", headers={**YAML, **headers})
    assert r.status_code == 401, r.text
    assert "Bearer <admin token>" in r.text or "admin token" in r.text
    assert ("/srv/atoll/admin-token" in r.text) is (client == "127.0.0.1")


async def test_a_resource_stored_with_a_lone_surrogate_stays_readable_and_deletable(
    api: httpx.AsyncClient, store: Store
) -> None:
    await put_mesh(api)
    assert (await api.put("/meshes/default/dataplanes/web", json=dataplane("web"))).status_code == 201
    current = await store.get("Dataplane", "web", "default")
    data = current.spec_dict()
    data["networking"]["inbound"][0]["tags"]["version"] = "\ud800"  # written past validation
    await store.update(current.with_spec(type(current.spec).model_validate(data)))
    for path in ("/meshes/default/dataplanes", "/meshes/default/dataplanes/web", "/dataplanes"):
        r = await api.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert "\\ud800" in r.text
    r = await api.get("/meshes/default/dataplanes/web", headers={"accept": "application/yaml"})
    assert r.status_code == 200, r.text[:300]
    assert (await api.delete("/meshes/default/dataplanes/web")).status_code == 200
