"""What every route handler shares: query and header parsing, answers, the admin check.

- ``PageRequest.of(request)`` reads ``size`` (1..``MAX_PAGE_SIZE``, default ``DEFAULT_PAGE_SIZE``),
  ``offset`` (0..``MAX_OFFSET``) and the ``name`` prefix, reporting every bad parameter at once (400;
  numbers in ASCII digits only, a bad value quoted escaped and cut short); ``list_page``
  reads that page from the store; ``page_answer`` writes a ``{total, items, next}`` page whose
  ``next`` is this request's URL with the following offset, or ``null`` on the last page.
- ``respond`` answers JSON, or YAML when the client's ``Accept`` asks for YAML and not JSON; text
  that UTF-8 cannot carry (stored before input was checked) is escaped, not a 500.
- ``if_match`` reads ``If-Match: <version>`` (quotes and ``W/`` allowed) as a positive integer
  (ASCII digits, at most ``MAX_VERSION``).
- ``json_object`` reads a request body that must be one JSON object (bootstrap, tokens, agents).
- ``Access`` asks ``is_admin`` and answers 403 when it says no (``AdminAuth`` raises 401 itself);
  secret types are shown to admins only.
- ``require_mesh`` answers 404 naming ``mesh`` when the path's mesh does not exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from atoll.api.body import check_content_type, parse_document, read_body
from atoll.api.deps import AdminCheck
from atoll.api.errors import HttpError
from atoll.errors import FieldError, InvalidInput, NotFound
from atoll.resources.meta import Resource
from atoll.resources.types import ResourceType
from atoll.store.protocol import ListFilter, Page, Store

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_OFFSET = 1_000_000_000
"""The largest ``offset`` a list accepts (past any real list; bounded so no store sees a huge number)."""
MAX_VERSION = 2**63 - 1
"""The largest resource version ``If-Match`` may name (the stores keep versions as 64-bit integers)."""

_DIGITS = re.compile(r"[0-9]{1,19}")
"""A whole number in ASCII digits (``str.isdigit`` also takes ``³`` and ``٣``), at most 19 of them."""


def _shown(raw: str) -> str:
    """``raw`` as an error message may quote it: escaped, and cut after 40 characters."""
    text = raw if len(raw) <= 40 else raw[:40] + "..."
    return text.encode("unicode_escape").decode("ascii").replace('"', '\\"')


@dataclass(frozen=True, slots=True)
class PageRequest:
    """The paging query of a list request."""

    size: int
    offset: int
    prefix: str

    @classmethod
    def of(cls, request: Request) -> PageRequest:
        """The paging of ``request``; ``InvalidInput`` (400) naming every bad parameter."""
        query = request.query_params
        errors: list[FieldError] = []
        size = _whole_number(query, "size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE, errors)
        offset = _whole_number(query, "offset", 0, 0, MAX_OFFSET, errors)
        if errors:
            raise InvalidInput(errors, title="invalid query")
        return cls(size, offset, query.get("name", ""))

    @property
    def name_prefix(self) -> str | None:
        return self.prefix or None


def _whole_number(
    query: Mapping[str, str], key: str, default: int, low: int, high: int | None, errors: list[FieldError]
) -> int:
    raw = query.get(key)
    if raw is None:
        return default
    text = raw.strip()
    if not _DIGITS.fullmatch(text):
        errors.append(FieldError(key, f'must be a whole number, got "{_shown(raw)}"'))
        return default
    value = int(text)
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f"at least {low}"
        errors.append(FieldError(key, f"must be {bound}, got {value}"))
        return default
    return value


async def list_page(store: Store, paging: PageRequest, type: str, mesh: str | None = None) -> Page:
    """The page of ``type`` resources (in ``mesh``, if given) that ``paging`` asks for."""
    wanted = ListFilter(type=type, mesh=mesh, name_prefix=paging.name_prefix)
    return await store.list(wanted, offset=paging.offset, limit=paging.size)


def page_answer(request: Request, paging: PageRequest, page: Page, items: list[Any]) -> Response:
    """The ``{total, items, next}`` answer of one page of a list."""
    next_url = None
    if page.next_offset is not None:
        next_url = str(request.url.include_query_params(offset=page.next_offset, size=paging.size))
    return respond(request, {"total": page.total, "items": items, "next": next_url})


def respond(request: Request, body: Any, *, headers: dict[str, str] | None = None) -> Response:
    """JSON, or YAML when the client asks for it in ``Accept``."""
    accept = request.headers.get("accept", "")
    if "yaml" in accept and "json" not in accept:
        text = yaml.safe_dump(body, sort_keys=False, default_flow_style=False, allow_unicode=True)
        return Response(text.encode("utf-8", "backslashreplace"), media_type="application/yaml", headers=headers)
    return ReadableJSONResponse(body, headers=headers)


class ReadableJSONResponse(JSONResponse):
    """Starlette's JSON answer, byte for byte, except that text no UTF-8 can carry (a lone surrogate
    stored before input was checked for it) is written as its JSON escape (``\\ud800``) instead of
    failing the answer: such a resource stays readable, and so can be fixed or deleted."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))
        return text.encode("utf-8", "backslashreplace")


def etag(r: Resource[Any]) -> dict[str, str]:
    return {"ETag": f'"{r.meta.version}"'}


def if_match(request: Request) -> int | None:
    """The version ``If-Match`` names, or ``None`` without the header; 400 if it is no version."""
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    text = raw.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= MAX_VERSION:
        raise InvalidInput(
            FieldError("If-Match", f'must be a resource version (a positive integer), got "{_shown(raw)}"'),
            title="invalid header",
        )
    return int(text)


async def json_object(request: Request, what: str, max_body_bytes: int) -> dict[str, Any]:
    """The request body, which must be one JSON object (``what`` names it in errors)."""
    kind = check_content_type(request, yaml_allowed=False)
    doc = parse_document(await read_body(request, max_body_bytes), kind)
    if not isinstance(doc, dict):
        raise InvalidInput(f"the {what} must be a JSON object", title=f"invalid {what}")
    return doc


@dataclass(frozen=True, slots=True)
class Access:
    """Who may do what: admins (as ``is_admin`` decides) write, and read secret types."""

    is_admin: AdminCheck

    def require_admin(self, request: Request, details: str) -> None:
        """403 if ``is_admin`` says no (an ``AdminAuth`` raises ``Unauthenticated`` -> 401 itself)."""
        if not self.is_admin(request):
            raise HttpError(403, "access denied", details)

    def check_read(self, rt: ResourceType, request: Request) -> None:
        """403 for a secret type unless the client is an admin."""
        if rt.secret and not self.is_admin(request):
            raise HttpError(403, "access denied", f"{rt.name} resources are only available to admin clients")


async def require_mesh(store: Store, mesh: str) -> None:
    """404 naming the ``mesh`` field when the mesh in the path does not exist."""
    try:
        await store.get("Mesh", mesh)
    except NotFound:
        err = FieldError("mesh", f'mesh "{mesh}" does not exist')
        raise HttpError(404, "not found", str(err), [err]) from None
