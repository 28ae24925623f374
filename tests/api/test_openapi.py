"""``/openapi.json`` gives every resource type its real shape, generated from the type's spec model."""

from __future__ import annotations

from typing import Any

import httpx

from atoll.resources import all_types, encode
from atoll.resources.codec import decode
from tests.api.conftest import dataplane

ENVELOPE = {"type", "name", "labels", "creationTime", "modificationTime"}


async def openapi(api: httpx.AsyncClient) -> dict[str, Any]:
    r = await api.get("/openapi.json")
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def refs(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


async def test_every_reference_resolves(api: httpx.AsyncClient) -> None:
    doc = await openapi(api)
    schemas = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


async def test_each_type_has_the_fields_of_its_spec_model(api: httpx.AsyncClient) -> None:
    schemas = (await openapi(api))["components"]["schemas"]
    for rt in all_types():
        schema = schemas[rt.name]
        assert schema["additionalProperties"] is False, rt.name
        fields = {f.alias or name for name, f in rt.spec_model.model_fields.items()}
        expected = ENVELOPE | ({"mesh"} if rt.mesh_scoped else set())
        if rt.flattened:
            assert set(schema["properties"]) == expected | fields, rt.name
        else:
            assert set(schema["properties"]) == expected | {"spec"}, rt.name
            assert set(schemas[f"{rt.name}Spec"]["properties"]) == fields, rt.name
        assert schema["properties"]["type"]["const"] == rt.name
        assert schemas[f"{rt.name}List"]["properties"]["items"]["items"] == {"$ref": f"#/components/schemas/{rt.name}"}


async def test_resource_routes_name_their_bodies(api: httpx.AsyncClient) -> None:
    doc = await openapi(api)
    ref = {"$ref": "#/components/schemas/Dataplane"}
    put = doc["paths"]["/meshes/{mesh}/dataplanes/{name}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"] == ref
    assert put["requestBody"]["content"]["application/yaml"]["schema"] == ref
    assert put["responses"]["201"]["content"]["application/json"]["schema"] == ref
    for status in ("400", "409", "413", "500"):  # explicit error statuses (issue 14), no catch-all "default"
        assert put["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }
    get = doc["paths"]["/meshes/{mesh}/dataplanes/{name}"]["get"]
    assert get["responses"]["200"]["content"]["application/json"]["schema"] == ref
    listing = doc["paths"]["/dataplanes"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listing == {"$ref": "#/components/schemas/DataplaneList"}


async def test_a_served_document_uses_only_documented_fields(api: httpx.AsyncClient) -> None:
    """Nested fields too: each object of an encoded Dataplane is described by a schema with its keys."""
    schemas = (await openapi(api))["components"]["schemas"]
    doc = encode(decode(dataplane("web-1")))

    def walk(value: object, schema: dict[str, Any], where: str) -> None:
        schema = resolve(schema)
        if isinstance(value, dict) and "properties" in schema:
            for key, item in value.items():
                assert key in schema["properties"], f"{where}.{key} is not documented"
                walk(item, schema["properties"][key], f"{where}.{key}")
        elif isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                walk(item, schema["items"], f"{where}[{i}]")

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in schema:
            return resolve(schemas[schema["$ref"].removeprefix("#/components/schemas/")])
        for option in schema.get("anyOf", ()):
            if option.get("type") != "null":
                return resolve(option)
        return schema

    walk({**doc, "creationTime": "t"}, {"$ref": "#/components/schemas/Dataplane"}, "Dataplane")
    assert "inbound" in resolve(resolve(schemas["Dataplane"])["properties"]["networking"])["properties"]
