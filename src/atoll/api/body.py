"""Request bodies: size limit, content type, and parsing a single JSON or YAML document.

``read_body`` refuses a body larger than the limit with 413 — from ``Content-Length`` before
reading anything, else while streaming (so a chunked upload cannot grow past it either).
``parse_document`` accepts ``application/json`` (and ``*+json``) or a YAML media type
(``application/yaml``, ``application/x-yaml``, ``text/yaml``, ``text/x-yaml``); a request without a
``Content-Type`` is read as YAML, which also reads JSON. Anything else is 415.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from atoll.api.errors import HttpError
from atoll.errors import InvalidInput
from atoll.resources.codec import load_documents
from atoll.resources.parsing import TextLimit, load_json

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
JSON_TYPES = frozenset({"application/json"})
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def _too_large(limit: int) -> HttpError:
    return HttpError(413, "request body too large", f"the request body is larger than the limit of {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole request body, or ``HttpError`` 413 once it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    """The media type of the request body, lower case, without parameters ("" if none)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def check_content_type(request: Request, *, yaml_allowed: bool = True) -> str:
    """``"json"`` or ``"yaml"`` for the request's content type; ``HttpError`` 415 for anything else."""
    mt = media_type(request)
    if mt in JSON_TYPES or mt.endswith("+json"):
        return "json"
    if yaml_allowed and (mt in YAML_TYPES or not mt):
        return "yaml"
    if not yaml_allowed and not mt:
        return "json"
    accepted = "application/json" + (" or application/yaml" if yaml_allowed else "")
    raise HttpError(415, "unsupported media type", f'content type "{mt}" is not supported; send {accepted}')


def parse_document(data: bytes, kind: str) -> Any:
    """The one document in ``data`` (``kind`` from ``check_content_type``); ``InvalidInput`` if the
    text is not valid JSON/YAML or holds no or several documents."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"the body is not UTF-8 text: {e.reason} at byte {e.start}", title="invalid body") from None
    if kind == "json":
        try:
            return load_json(text)
        except TextLimit as e:
            raise InvalidInput(f"invalid JSON: {e}", title="invalid JSON") from None
        except json.JSONDecodeError as e:
            raise InvalidInput(
                f"invalid JSON: line {e.lineno}, column {e.colno}: {e.msg}", title="invalid JSON"
            ) from None
    docs = load_documents(text)
    if len(docs) != 1:
        raise InvalidInput(f"expected one resource in the body, got {len(docs)} documents", title="invalid body")
    return docs[0]
