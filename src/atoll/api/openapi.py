"""The OpenAPI document of the REST API, with the real shape of every resource type.

FastAPI writes the paths from the routes; the resource routes add their parameters, request
bodies and answers through ``openapi_extra`` (``list_operation``, ``item_operation``). Each served
resource type gets schemas generated from its spec model (``model_json_schema``, by alias, as
validated on input) under ``components.schemas``:

- ``{Type}``: the Universal document. Flattened types (Mesh, Dataplane, Zone, ...) carry their spec
  fields beside the envelope (``type``, ``name``, ``mesh``, ``labels``, read-only ``creationTime`` and
  ``modificationTime``); ``Mesh*`` policies carry them under ``spec`` (``{Type}Spec``). Unknown
  fields are refused, as the codec does. ``type``, ``name`` and ``mesh`` are not required in a
  request body: the API takes them from the path.
- ``{Type}List``: a page, ``{total, items, next}``.
- ``{Type}.{Model}``: the nested models of the spec (namespaced: two types may both have a ``Conf``).

``Error`` is the body of every error answer (``atoll.api.errors``); every operation lists the error
statuses it may answer (``ERROR_STATUSES``: 400 for a bad parameter or body, 401/403, 404, 405, 500;
with a body also 413 past the size limit and 415; writes of one resource 409), and parameters carry
their bounds (``size``, ``offset``, ``If-Match``). ``OpenApiApp`` is the FastAPI
app that merges these schemas into the document the first time it is asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI

from atoll.api.body import DEFAULT_MAX_BODY_BYTES
from atoll.api.wire import DEFAULT_PAGE_SIZE, MAX_OFFSET, MAX_PAGE_SIZE, MAX_VERSION
from atoll.resources.types import ResourceType

SCHEMAS = "#/components/schemas/"
BODY_TYPES = ("application/json", "application/yaml")

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Error",
    "properties": {
        "title": {"type": "string"},
        "details": {"type": "string"},
        "invalid_parameters": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
                "required": ["field", "reason"],
            },
        },
    },
    "required": ["title", "details", "invalid_parameters"],
}


class OpenApiApp(FastAPI):
    """A FastAPI app whose OpenAPI document also holds the schemas of ``types`` and ``Error``.

    The document is built the first time it is asked for (generating the schemas takes a few
    hundred milliseconds: no app pays for it at construction)."""

    def __init__(self, types: Sequence[ResourceType], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._types = tuple(types)

    def openapi(self) -> dict[str, Any]:
        fresh = not self.openapi_schema
        doc = super().openapi()  # built once, then cached by FastAPI
        if fresh:
            doc.setdefault("components", {}).setdefault("schemas", {}).update(component_schemas(self._types))
        return doc


def _param(
    name: str, where: str, description: str, typ: str = "string", required: bool = True, **bounds: Any
) -> dict[str, Any]:
    schema = {"type": typ, **bounds}
    return {"name": name, "in": where, "required": required, "description": description, "schema": schema}


MESH = _param("mesh", "path", "Name of the mesh.")
POLICY_PLURAL = _param("plural", "path", "Plural of a policy type (meshtimeouts, meshretries, ...).")
LIST_QUERY = [
    _param(
        "size",
        "query",
        f"Items per page, 1..{MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE}).",
        "integer",
        False,
        minimum=1,
        maximum=MAX_PAGE_SIZE,
    ),
    _param(
        "offset",
        "query",
        f"Index of the first item, 0..{MAX_OFFSET} (default 0).",
        "integer",
        False,
        minimum=0,
        maximum=MAX_OFFSET,
    ),
    _param("name", "query", "Only resources whose name starts with this prefix.", required=False),
]
DATAPLANE_FILTERS = [
    {
        "name": "tag",
        "in": "query",
        "required": False,
        "description": "Only Dataplanes with this tag (key:value) on an inbound or the gateway; repeatable.",
        "schema": {"type": "array", "items": {"type": "string", "pattern": "^[^:]+:"}},
        "style": "form",
        "explode": True,
    },
    _param(
        "gateway",
        "query",
        "true, false, delegated or builtin: only gateways (of that type), or no gateway.",
        required=False,
        enum=["true", "false", "delegated", "builtin"],
    ),
    _param(
        "ingress",
        "query",
        "true or false (true matches none: zone ingresses are ZoneIngress resources).",
        required=False,
        enum=["true", "false"],
    ),
]
INCLUDE_EDS = _param(
    "include_eds",
    "query",
    "true: the dump includes EDS (endpoints); default false.",
    required=False,
    enum=["true", "false"],
)
KUMA_CONFIG_QUERY = [
    _param(
        "shadow",
        "query",
        "false (default); true is refused: Atoll has no shadow policies.",
        required=False,
        enum=["false"],
    ),
    {
        "name": "include",
        "in": "query",
        "required": False,
        "description": "Extra fields; none is supported (diff is refused).",
        "schema": {"type": "array", "items": {"type": "string"}, "maxItems": 0},
        "style": "form",
        "explode": True,
    },
]
IF_MATCH = _param(
    "If-Match",
    "header",
    f"Only write if the stored version is this one: a whole number 1..{MAX_VERSION}, quotes and W/ allowed.",
    required=False,
    pattern='^ *(W/)?"?[0-9]{1,19}"? *$',
    maxLength=26,
)
NO_REQUEST = {"204": {"description": "No request came within ``wait`` seconds"}}
POLL_QUERY = [
    _param("mesh", "query", "Mesh of the agent's proxy."),
    _param("name", "query", "Name of the agent's proxy."),
    _param("wait", "query", "Seconds to wait for a request, 0..30 (default 20).", "number", False),
]


def name_param(what: str) -> dict[str, Any]:
    return _param("name", "path", f"Name of the {what}.")


def operation(
    parameters: list[dict[str, Any]],
    answer: str | None = None,
    *,
    yaml: bool = False,
    body: str | None = None,
    created: bool = False,
) -> dict[str, Any]:
    """``openapi_extra`` of a route: its ``parameters``; a 200 answer of the ``answer`` schema (any
    JSON object if ``None``; YAML too for reads that follow ``Accept``), also as 201 if ``created``;
    a request body of the ``body`` schema (JSON or YAML), or of a JSON object if ``body == "object"``;
    the ``Error`` answers it may give (``errors``: 409 for writes of one resource)."""
    answers = {"200": _answer(answer, yaml=yaml)}
    if created:
        answers["201"] = _answer(answer)
    statuses = set(ERROR_STATUSES) | ({413, 415} if body is not None else set()) | ({409} if created else set())
    out: dict[str, Any] = {"responses": {**answers, **error_responses(statuses)}}
    if parameters:
        out["parameters"] = parameters
    if body == "object":
        out["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
    elif body is not None:
        out["requestBody"] = {"content": {t: {"schema": _ref(body)} for t in BODY_TYPES}}
    if body is not None:
        out["requestBody"] |= {"required": True, "description": BODY_LIMIT}
    return out


BODY_LIMIT = (
    f"At most the server's body limit: {DEFAULT_MAX_BODY_BYTES} bytes unless configured otherwise "
    "(413 past it); JSON and YAML nested at most 64 levels deep, YAML aliases bounded (400)."
)

ERROR_STATUSES = (400, 401, 403, 404, 405, 500)
"""The error statuses any operation may answer (a body adds 413 and 415, a write of one resource 409)."""

_ERROR_MEANINGS = {
    400: "Invalid parameter, header or body; invalid_parameters names each field",
    401: "Authentication required (admin token or dataplane token)",
    403: "Not allowed for this client",
    404: "No such resource, mesh or path",
    405: "Method not allowed on this path",
    409: "Conflict: the resource exists, or If-Match names another version",
    413: "Request body too large",
    415: "Unsupported content type",
    500: "Internal error; details name a request id to look for in the server's log",
}


def error_responses(statuses: Iterable[int] = ERROR_STATUSES) -> dict[str, Any]:
    """The ``responses`` entries of ``statuses``, each with the ``Error`` body."""
    body = {"application/json": {"schema": {"$ref": SCHEMAS + "Error"}}}
    return {str(s): {"description": _ERROR_MEANINGS[s], "content": body} for s in sorted(statuses)}


def _ref(schema: str | None) -> dict[str, Any]:
    return {"$ref": SCHEMAS + schema} if schema is not None else {"type": "object"}


def _answer(schema: str | None, *, yaml: bool = False) -> dict[str, Any]:
    types = BODY_TYPES if yaml else BODY_TYPES[:1]
    return {"description": schema or "OK", "content": {t: {"schema": _ref(schema)} for t in types}}


def list_operation(rt: ResourceType, *, in_mesh: bool) -> dict[str, Any]:
    """``openapi_extra`` of a list route (in a mesh, or at the root)."""
    return operation([MESH, *LIST_QUERY] if in_mesh else LIST_QUERY, f"{rt.name}List", yaml=True)


def item_operation(rt: ResourceType, method: str) -> dict[str, Any]:
    """``openapi_extra`` of the ``GET``, ``PUT`` or ``DELETE`` route of one resource."""
    params = [MESH, name_param(rt.name)] if rt.mesh_scoped else [name_param(rt.name)]
    if method == "GET":
        return operation(params, rt.name, yaml=True)
    if method == "DELETE":
        out = operation([*params, IF_MATCH])
        out["responses"] |= error_responses([409])
        return out
    op = operation([*params, IF_MATCH], rt.name, body=rt.name, created=True)
    for code in ("200", "201"):  # the stored resource, plus what of it no generator reads
        op["responses"][code]["description"] = (
            f"The stored {rt.name}; with `warnings` (a list of `<kind or field path>: <why>` strings) "
            "when part of it is stored and not enforced"
        )
    return op


def component_schemas(types: Iterable[ResourceType]) -> dict[str, Any]:
    """``components.schemas`` of the served types, plus ``Error``."""
    out: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for rt in types:
        spec = rt.spec_model.model_json_schema(by_alias=True, ref_template=SCHEMAS + rt.name + ".{model}")
        for name, schema in spec.pop("$defs", {}).items():
            out[f"{rt.name}.{name}"] = schema
        out[rt.name] = _document(rt, spec, out)
        out[f"{rt.name}List"] = {
            "type": "object",
            "title": f"{rt.name}List",
            "properties": {
                "total": {"type": "integer"},
                "items": {"type": "array", "items": {"$ref": SCHEMAS + rt.name}},
                "next": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "URL of the next page"},
            },
            "required": ["total", "items", "next"],
        }
    return out


def _document(rt: ResourceType, spec: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """The Universal document of ``rt``: the envelope and the spec, flattened or under ``spec``."""
    time = {"type": "string", "format": "date-time", "readOnly": True}
    props: dict[str, Any] = {
        "type": {"type": "string", "const": rt.name},
        "name": {"type": "string", "description": "Defaults to the name in the path."},
    }
    if rt.mesh_scoped:
        props["mesh"] = {"type": "string", "description": "Defaults to the mesh in the path."}
    props["labels"] = {"type": "object", "additionalProperties": {"type": "string"}}
    props["creationTime"] = time
    props["modificationTime"] = time
    required: list[str] = []
    if rt.flattened:
        props.update(spec.get("properties", {}))
        required = list(spec.get("required", []))
    else:
        out[f"{rt.name}Spec"] = spec
        props["spec"] = {"$ref": f"{SCHEMAS}{rt.name}Spec"}
        required = ["spec"] if spec.get("required") else []
    doc: dict[str, Any] = {"type": "object", "title": rt.name, "properties": props, "additionalProperties": False}
    if required:
        doc["required"] = required
    return doc
