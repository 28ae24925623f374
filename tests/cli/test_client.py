"""The REST client's error handling and how the CLI prints errors (no server: an httpx transport
function answers, so every error shape can be produced exactly)."""

from __future__ import annotations

import httpx
import pytest

from atoll.cli.client import ApiError, Client, InvalidParameter, Unreachable
from atoll.cli.common import report_error
from atoll.errors import FieldError, InvalidInput
from atoll.resources import get_type
from tests.helpers import free_port

MESH = get_type("Mesh")
DATAPLANE = get_type("Dataplane")


def client_for(handler: httpx.MockTransport) -> Client:
    return Client("http://cp.test:5681", transport=handler, source="--cp")


def test_error_body_becomes_api_error_and_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    body = {
        "title": "invalid MeshTimeout",
        "details": "spec.to[0].default.http.requestTimeout: invalid duration",
        "invalid_parameters": [
            {"field": "spec.to[0].default.http.requestTimeout", "reason": 'invalid duration "5x"'},
            {"field": "spec.targetRef.kind", "reason": "required"},
        ],
    }
    c = client_for(httpx.MockTransport(lambda req: httpx.Response(400, json=body)))
    with pytest.raises(ApiError) as e:
        c.put(DATAPLANE, {"type": "Dataplane", "name": "x", "mesh": "default"})
    assert e.value.status == 400
    assert e.value.invalid_parameters == (
        InvalidParameter("spec.to[0].default.http.requestTimeout", 'invalid duration "5x"'),
        InvalidParameter("spec.targetRef.kind", "required"),
    )
    assert report_error(e.value) == 1
    assert capsys.readouterr().err.splitlines() == [
        "Error: invalid MeshTimeout",
        '  spec.to[0].default.http.requestTimeout: invalid duration "5x"',
        "  spec.targetRef.kind: required",
    ]


def test_paths_and_pagination() -> None:
    seen: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(str(req.url))
        if req.url.params.get("offset") == "1":
            return httpx.Response(200, json={"total": 2, "items": [{"name": "b"}], "next": None})
        nxt = str(req.url.copy_merge_params({"offset": "1"}))
        return httpx.Response(200, json={"total": 2, "items": [{"name": "a"}], "next": nxt})

    c = client_for(httpx.MockTransport(handler))
    assert [d["name"] for d in c.list(DATAPLANE, "my mesh")] == ["a", "b"]
    assert seen[0] == "http://cp.test:5681/meshes/my%20mesh/dataplanes"


def test_get_missing_is_none_and_non_json_error_is_readable(capsys: pytest.CaptureFixture[str]) -> None:
    c = client_for(httpx.MockTransport(lambda req: httpx.Response(404, json={"title": "not found"})))
    assert c.get(MESH, "nope", None) is None
    c = client_for(httpx.MockTransport(lambda req: httpx.Response(502, text="Bad Gateway from proxy")))
    with pytest.raises(ApiError) as e:
        c.list(MESH, None)
    report_error(e.value)
    assert capsys.readouterr().err.splitlines() == ["Error: Bad Gateway", "  Bad Gateway from proxy"]


def test_connection_refused_names_the_address(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    with Client(f"http://127.0.0.1:{port}", source='context "x"') as c, pytest.raises(Unreachable) as e:
        c.index()
    report_error(e.value)
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f'Error: cannot reach the control plane at http://127.0.0.1:{port} (from context "x")')
    assert "connection refused" in line and "atoll cp" in line and "--cp" in line


def test_invalid_input_lists_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    report_error(
        InvalidInput([FieldError("[0].name", "required"), FieldError("[1].mesh", "bad")], title="invalid input")
    )
    assert capsys.readouterr().err.splitlines() == ["Error: invalid input", "  [0].name: required", "  [1].mesh: bad"]


def test_paths_agree_with_the_server() -> None:
    from atoll.api import paths as server
    from atoll.cli import client
    from atoll.resources import all_types

    for rt in all_types():
        mesh = "m 1" if rt.mesh_scoped else None
        assert client.collection_path(rt, mesh) == server.collection_path(rt, mesh)
        assert client.item_path(rt, "a/b", mesh) == server.item_path(rt, "a/b", mesh)
        assert client.collection_path(rt, None) == server.collection_path(rt, None)
    assert client.ROOT == server.ROOT


def test_token_is_sent_as_bearer() -> None:
    seen: list[str | None] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.headers.get("authorization"))
        return httpx.Response(200, json={"version": "1"})

    with Client("http://cp.test", token="s3cret", transport=httpx.MockTransport(handler)) as c:
        c.index()
    with Client("http://cp.test", transport=httpx.MockTransport(handler)) as c:
        c.index()
    assert seen == ["Bearer s3cret", None]
