"""HTTP error responses: every error the API returns, and the one place that maps errors to codes.

Every error body has the same shape (Kuma's)::

    {"title": "...", "details": "...", "invalid_parameters": [{"field": "spec.to[0]", "reason": "..."}]}

Handlers raise ``HttpError`` (a status and that body: an error this server answers; the CLI's
``ErrorReply`` is the client's view of one) or let an ``AtollError`` through;
``install_error_handlers`` turns both, plus Starlette's own 404/405 and FastAPI's request validation
errors, into that shape. Store errors map as ``NotFound`` -> 404, ``AlreadyExists`` and ``Conflict``
-> 409, any other ``StoreError`` -> 500; ``InvalidInput`` -> 400 with one entry per field error;
``Unauthenticated`` -> 401 (``WWW-Authenticate: Bearer``), ``Forbidden`` -> 403.

A 500 (an unexpected exception, a ``StoreError`` that is no 404/409, any other ``AtollError``) is
answered with a fresh request id (also in ``X-Request-Id``) and nothing of the exception: its class
and message are logged, once, in one ERROR line with that id (the traceback at DEBUG). Unexpected
exceptions are caught by ``CatchAll``, a middleware inside Starlette's own error middleware, so the
server does not log a second traceback.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atoll.errors import (
    AlreadyExists,
    AtollError,
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    StoreError,
    Unauthenticated,
)

log = logging.getLogger(__name__)


class HttpError(Exception):
    """An HTTP error with its status and the JSON error body."""

    def __init__(
        self,
        status: int,
        title: str,
        details: str = "",
        invalid_parameters: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.details = details or title
        self.invalid_parameters = list(invalid_parameters)
        self.headers = headers
        super().__init__(f"{status} {title}: {self.details}")

    def body(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "details": self.details,
            "invalid_parameters": [{"field": e.path, "reason": e.message} for e in self.invalid_parameters],
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def http_error(exc: Exception, request: Request | None = None) -> HttpError:
    """The ``HttpError`` for any exception a handler let through (the single mapping)."""
    if isinstance(exc, HttpError):
        return exc
    if isinstance(exc, InvalidInput):
        return HttpError(400, exc.title, "; ".join(str(e) for e in exc.errors), exc.errors)
    if isinstance(exc, NotFound):
        return HttpError(404, "not found", str(exc))
    if isinstance(exc, AlreadyExists):
        return HttpError(409, "already exists", str(exc))
    if isinstance(exc, Conflict):
        return HttpError(409, "conflict", str(exc))
    if isinstance(exc, StoreError):
        return internal_error(exc, request, "store error")
    if isinstance(exc, Unauthenticated):
        return HttpError(401, "unauthenticated", exc.reason, headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, Forbidden):
        return HttpError(403, "forbidden", exc.reason)
    if isinstance(exc, AtollError):
        return internal_error(exc, request)
    if isinstance(exc, StarletteHTTPException):
        titles = {404: "not found", 405: "method not allowed"}
        title = titles.get(exc.status_code, str(exc.detail).lower())
        details = str(exc.detail)
        headers = dict(exc.headers) if exc.headers else None
        where = request.url.path if request is not None else "this path"
        if exc.status_code == 404:
            details = f"no such path: {where}"
        elif exc.status_code == 405 and request is not None:
            allowed = allowed_methods(request)
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            details = f"{request.method} is not allowed on {where}; allowed: {', '.join(allowed)}"
        return HttpError(exc.status_code, title, details, headers=headers)
    if isinstance(exc, RequestValidationError):
        fields = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "header", "body")]
            fields.append(FieldError(".".join(loc), str(err.get("msg", "invalid"))))
        return HttpError(400, "invalid request", "; ".join(str(f) for f in fields), fields)
    return internal_error(exc, request)


def internal_error(exc: BaseException, request: Request | None, title: str = "internal error") -> HttpError:
    """The 500 for ``exc``: logged once under a new request id; the answer names only that id."""
    request_id = secrets.token_hex(8)
    where = f"{request.method} {request.url.path}" if request is not None else "a request"
    log.error("request %s: %s failed: %s: %s", request_id, where, type(exc).__name__, exc)
    log.debug("request %s: traceback", request_id, exc_info=exc)
    return HttpError(
        500,
        title,
        f"the server could not complete this request; its log names it as request {request_id}",
        headers={"X-Request-Id": request_id},
    )


FALLBACK_ROUTE = "unknown-resource-type"
"""Name of the catch-all routes that answer for unknown types; they never count as allowing a method."""


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on the request's path (Starlette's 405 names only one route's)."""
    methods: list[str] = []
    for route in request.app.router.routes:
        if getattr(route, "name", None) == FALLBACK_ROUTE:
            continue
        match, _ = route.matches({**request.scope, "method": "\x00"})
        if match is not Match.NONE:
            for m in getattr(route, "methods", None) or ():
                if m not in methods and m != "HEAD":
                    methods.append(m)
    return methods


def install_error_handlers(app: FastAPI) -> None:
    """Route every error raised by a handler (or by routing itself) through ``http_error``."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return http_error(exc, request).response()

    for exc_type in (HttpError, AtollError, StarletteHTTPException, RequestValidationError):
        app.add_exception_handler(exc_type, handle)
    app.add_middleware(CatchAll)


class CatchAll:
    """ASGI middleware: any exception the app lets through becomes ``internal_error``'s 500 (when no
    answer was started), and is not raised further (so it is logged once, by ``internal_error``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            error = internal_error(exc, Request(scope))
            if not started:
                await error.response()(scope, receive, send)
