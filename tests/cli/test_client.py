"""The REST client's error handling and how the CLI prints errors (no server: an httpx transport
function answers, so every error shape can be produced exactly)."""

from __future__ import annotations

import httpx
import pytest

from atoll.cli.client import Client, ErrorReply, InvalidParameter, Unreachable, Written
from atoll.cli.common import report_error
from atoll.errors import FieldError, InvalidInput
from atoll.resources import get_type
from tests.helpers import free_port

MESH = get_type("Mesh")
DATAPLANE = get_type("Dataplane")


def client_for(handler: httpx.MockTransport) -> Client:
    return Client("http://cp.test:5681", transport=handler, source="--cp")


def test_error_body_becomes_error_reply_and_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    body = {
        "title": "invalid MeshTimeout",
        "details": "spec.to[0].default.http.requestTimeout: invalid duration",
        "invalid_parameters": [
            {"field": "spec.to[0].default.http.requestTimeout", "reason": 'invalid duration "5x"'},
            {"field": "spec.targetRef.kind", "reason": "required"},
        ],
    }
    c = client_for(httpx.MockTransport(lambda req: httpx.Response(400, json=body)))
    with pytest.raises(ErrorReply) as e:
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
    with pytest.raises(ErrorReply) as e:
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


def test_requests_go_to_the_resource_paths() -> None:
    seen: list[tuple[str, str]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append((req.method, req.url.raw_path.decode()))
        if req.method == "GET" and req.url.path.endswith("s"):
            return httpx.Response(200, json={"total": 0, "items": [], "next": None})
        return httpx.Response(200, json={"type": "Mesh", "name": "x"})

    with Client("http://cp.test", transport=httpx.MockTransport(handler)) as c:
        c.index()
        c.list(MESH, None)
        c.list(DATAPLANE, "m 1")
        c.list(DATAPLANE, None)
        c.get(DATAPLANE, "a/b", "m 1")
        c.put(DATAPLANE, {"type": "Dataplane", "name": "web", "mesh": "default"})
        c.delete(MESH, "x", None)
    assert seen == [
        ("GET", "/"),
        ("GET", "/meshes"),
        ("GET", "/meshes/m%201/dataplanes"),
        ("GET", "/dataplanes"),
        ("GET", "/meshes/m%201/dataplanes/a%2Fb"),
        ("PUT", "/meshes/default/dataplanes/web"),
        ("DELETE", "/meshes/x"),
    ]


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


def test_put_returns_status_and_warnings() -> None:
    answers = iter(
        [
            httpx.Response(201, json={"type": "Dataplane", "name": "web", "warnings": ["networking.gateway: why"]}),
            httpx.Response(200, json={"type": "Dataplane", "name": "web"}),
        ]
    )
    with client_for(httpx.MockTransport(lambda req: next(answers))) as c:
        doc = {"type": "Dataplane", "name": "web", "mesh": "default"}
        assert c.put(DATAPLANE, doc) == Written(201, ("networking.gateway: why",))
        assert c.put(DATAPLANE, doc) == Written(200, ())
