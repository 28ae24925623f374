"""A small synchronous REST client for a control plane's API, used by the CLI commands.

URLs come from ``atoll.api.paths``, the one module that spells REST paths for the server and its
clients (it imports no FastAPI: the CLI starts without loading the server). Resources travel as
Universal documents (plain dicts); lists are ``{total, items, next}`` pages, followed until ``next``
is empty.

Failures become two exceptions the CLI prints without a traceback: ``ErrorReply`` (the server
answered with an error status, or with a body the client cannot use; carries the ``{title,
details, invalid_parameters}`` body; the server raises ``atoll.api.errors.HttpError`` to answer
one) and ``Unreachable`` (no answer at the address). A write answers ``Written``: its status and
the CP's warnings, which ``atoll apply`` prints.
"""

from __future__ import annotations

import builtins
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from atoll.api.paths import ROOT, collection_path, item_path
from atoll.resources import ResourceType

TIMEOUT = httpx.Timeout(15.0, connect=5.0)


@dataclass(frozen=True, slots=True)
class Written:
    """The answer to a ``PUT``: its status (201 created, 200 updated) and the ``warnings`` the CP
    gave (what it stored and does not enforce: ``<kind or field path>: <why>``)."""

    status: int
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InvalidParameter:
    field: str
    reason: str


class ErrorReply(Exception):
    """The control plane answered with an error status (or a body the client cannot use)."""

    def __init__(
        self, status: int, title: str, details: str = "", invalid_parameters: tuple[InvalidParameter, ...] = ()
    ) -> None:
        self.status = status
        self.title = title
        self.details = details
        self.invalid_parameters = invalid_parameters
        super().__init__(f"{status} {title}")


class Unreachable(Exception):
    """Nothing answered at the control plane address."""

    def __init__(self, address: str, source: str, reason: str) -> None:
        self.address = address
        self.source = source
        self.reason = reason
        super().__init__(f"cannot reach the control plane at {address}: {reason}")


class Client:
    """REST client bound to one control plane. Use as a context manager or call ``close``."""

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        source: str = "default",
        transport: httpx.BaseTransport | None = None,
        verify: str | bool = True,  # a CA file (PEM) to trust, or True/False
    ) -> None:
        self.address = address
        self.source = source
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        tls: ssl.SSLContext | bool = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        self._http = httpx.Client(base_url=address, headers=headers, timeout=TIMEOUT, transport=transport, verify=tls)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- requests ---------------------------------------------------------------------------

    def index(self) -> dict[str, Any]:
        """``GET /``: the server's identity (version, mode, ...)."""
        return _as_dict(self._request("GET", ROOT))

    def get(self, rt: ResourceType, name: str, mesh: str | None) -> dict[str, Any] | None:
        """One resource as a Universal document, or ``None`` if it does not exist."""
        resp = self._send("GET", item_path(rt, name, mesh))
        if resp.status_code == 404:
            return None
        return _as_dict(_check(resp))

    def list(self, rt: ResourceType, mesh: str | None) -> list[dict[str, Any]]:
        """Every resource of a type (in ``mesh``, or every mesh if ``None``), following pagination."""
        return self.get_all(collection_path(rt, mesh))

    def put(self, rt: ResourceType, doc: dict[str, Any]) -> Written:
        """Create or update: the HTTP status (201 created, 200 updated) and the CP's warnings."""
        mesh = doc.get("mesh") if rt.mesh_scoped else None
        resp = self._send("PUT", item_path(rt, str(doc["name"]), mesh if isinstance(mesh, str) else None), json=doc)
        body = _check(resp)
        warnings = body.get("warnings") if isinstance(body, dict) else None
        return Written(resp.status_code, tuple(str(w) for w in warnings or ()))

    def get_path(self, path: str) -> Any:
        """``GET`` any API path (inspection endpoints); the decoded JSON body."""
        return self._request("GET", path)

    def get_all(self, path: str) -> builtins.list[dict[str, Any]]:
        """Every item of a paged list at ``path``, following ``next``."""
        items: builtins.list[dict[str, Any]] = []
        url: str | None = path
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            page = _as_dict(self._request("GET", url))
            raw = page.get("items") or []
            if not isinstance(raw, list):
                raise ErrorReply(200, "unexpected answer from the control plane", f"items of {url} is not a list")
            items.extend(i for i in raw if isinstance(i, dict))
            nxt = page.get("next")
            url = nxt if isinstance(nxt, str) and nxt else None
        return items

    def delete(self, rt: ResourceType, name: str, mesh: str | None, *, force: bool = False) -> None:
        self._request("DELETE", item_path(rt, name, mesh), params={"force": "true"} if force else None)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST`` a JSON object (e.g. to ``/tokens/dataplane``); the JSON object answered."""
        return _as_dict(self._request("POST", path, json=body))

    # -- plumbing ---------------------------------------------------------------------------

    def _request(self, method: str, url: str, **kw: Any) -> Any:
        return _check(self._send(method, url, **kw))

    def _send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        try:
            return self._http.request(method, url, **kw)
        except httpx.ConnectError as e:
            raise Unreachable(self.address, self.source, _reason(e)) from None
        except httpx.TimeoutException:
            raise Unreachable(self.address, self.source, "timed out") from None
        except httpx.TransportError as e:
            raise Unreachable(self.address, self.source, _reason(e)) from None


def _check(resp: httpx.Response) -> Any:
    """The decoded JSON body of a successful answer; ``ErrorReply`` for an error status."""
    if resp.is_success:
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise ErrorReply(resp.status_code, "unexpected answer from the control plane", "body is not JSON") from None
    raise _error_reply(resp)


def _error_reply(resp: httpx.Response) -> ErrorReply:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = resp.text.strip()
        return ErrorReply(resp.status_code, resp.reason_phrase or f"HTTP {resp.status_code}", text[:500])
    params: list[InvalidParameter] = []
    raw = body.get("invalid_parameters") or body.get("invalidParameters") or []
    if isinstance(raw, list):
        for p in raw:
            if isinstance(p, dict):
                params.append(InvalidParameter(str(p.get("field", "")), str(p.get("reason", ""))))
    title = body.get("title") or body.get("detail") or resp.reason_phrase or f"HTTP {resp.status_code}"
    details = body.get("details") or ""
    if not isinstance(details, str):
        details = str(details)
    if not isinstance(title, str):
        title = str(title)
    return ErrorReply(resp.status_code, title, details if details != title else "", tuple(params))


def _as_dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ErrorReply(200, "unexpected answer from the control plane", "expected a JSON object")
    return value


def _reason(e: Exception) -> str:
    text = str(e)
    if "refused" in text.lower() or "errno 111" in text.lower():
        return "connection refused"
    return text or type(e).__name__
