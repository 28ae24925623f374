"""Token routes (admin only): ``POST /tokens/dataplane``, ``/tokens/zone``, ``/tokens/revocations``.

Each checks the client is an admin (403), then hands the JSON object body to the ``TokenEndpoints``
of this CP (``atoll.security.TokenEndpoints``), which validates it and answers; a CP built without
one answers 404.

A token is answered as ``{"token": ...}`` JSON, or as the bare token in ``text/plain`` the way Kuma's
control plane answers, to Kuma's CLI (``User-Agent: kumactl/...``: ``kumactl generate
dataplane-token|zone-token`` prints the body as it comes) and to a client whose ``Accept`` names
``text/plain`` and no JSON. (Kuma's clients send no ``Accept``, nor do Python's ``urllib`` and others
that expect Atoll's JSON, so the header alone cannot tell them apart.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from atoll.api import openapi, paths
from atoll.api.deps import TokenEndpoints
from atoll.api.errors import HttpError
from atoll.api.wire import Access, json_object

TokenCall = Callable[[TokenEndpoints, dict[str, Any]], Awaitable[dict[str, Any]]]

ROUTES: tuple[tuple[str, str, TokenCall], ...] = (
    (paths.TOKENS_DATAPLANE, "dataplane token request", lambda t, body: t.issue_dataplane(body)),
    (paths.TOKENS_ZONE, "zone token request", lambda t, body: t.issue_zone(body)),
    (paths.TOKENS_REVOCATIONS, "token revocation", lambda t, body: t.revoke(body)),
)


def add_token_routes(router: APIRouter, tokens: TokenEndpoints | None, access: Access, max_body_bytes: int) -> None:
    """The token routes, answered by ``tokens``."""
    for path, what, call in ROUTES:
        router.add_api_route(
            path,
            _handler(tokens, access, max_body_bytes, what, call),
            methods=["POST"],
            summary=f"{what[0].upper()}{what[1:]} (admin only)",
            tags=["tokens"],
            openapi_extra=_token_operation()
            if path != paths.TOKENS_REVOCATIONS
            else openapi.operation([], body="object"),
        )


def _handler(
    tokens: TokenEndpoints | None, access: Access, max_body_bytes: int, what: str, call: TokenCall
) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        access.require_admin(request, f"{what}s are issued to admin clients only")
        if tokens is None:
            raise HttpError(404, "not found", "this control plane issues no tokens")
        doc = await json_object(request, what, max_body_bytes)
        answer = await call(tokens, doc)
        if "token" in answer and _wants_bare_token(request):
            return PlainTextResponse(answer["token"])
        return JSONResponse(answer)

    return handler


def _wants_bare_token(request: Request) -> bool:
    if request.headers.get("user-agent", "").startswith("kumactl/"):
        return True
    accept = request.headers.get("accept", "").lower()
    return "text/plain" in accept and "json" not in accept


def _token_operation() -> dict[str, Any]:
    op = openapi.operation([], body="object")
    op["responses"]["200"]["content"]["text/plain"] = {"schema": {"type": "string"}}
    op["responses"]["200"]["description"] = (
        "{token} as JSON, or the bare token as text/plain (see the module docstring)"
    )
    return op
