"""Universal-format codec: YAML/JSON documents <-> ``Resource`` values.

A Universal document has the envelope ``type``, ``name``, ``mesh`` (mesh-scoped types only),
``labels``, and the server-managed ``creationTime``, ``modificationTime``, ``kri`` (Kuma's resource
identifier) and ``status`` (what Kuma's control plane reports of a policy; kumactl sends ``{}``):
accepted and ignored on input (``kri`` must be a string, ``status`` a mapping), so a document read
from a control plane, Atoll's or Kuma's, applies again unchanged.
Flattened types (Mesh, Dataplane, ZoneIngress, ...) put their spec fields beside the envelope;
``Mesh*`` policies put them under ``spec:``. ``decode`` validates the whole document and raises
``InvalidInput`` with one ``FieldError`` per problem — first any string that is no storable text
(a lone surrogate, a NUL: ``base.text_problems``), alone —, each naming the path as the user wrote it
(``spec.to[0].default.http.requestTimeout: invalid duration "5x"``). ``encode`` writes the same
shape back; ``decode(encode(r))`` equals ``r`` (round trip is stable).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import yaml
from pydantic import ValidationError

from atoll.errors import FieldError, InvalidInput, join_path
from atoll.resources.base import check_name, error_items, text_problems
from atoll.resources.meta import Resource, ResourceMeta
from atoll.resources.parsing import TextLimit, load_yaml_documents
from atoll.resources.types import ResourceType, get_type

SERVER_MANAGED = ("creationTime", "modificationTime", "kri", "status")
"""Envelope fields a server sets: read on output, accepted and ignored on input."""
ENVELOPE = ("type", "name", "mesh", "labels", *SERVER_MANAGED)


def decode(doc: object) -> Resource[Any]:
    """Validate one Universal document (a mapping) into a ``Resource``; ``InvalidInput`` if wrong."""
    if not isinstance(doc, Mapping):
        raise InvalidInput(f"a resource must be a mapping, got {_kind(doc)}")
    bad_text = text_problems(doc)
    if bad_text:  # first, alone: later messages quote values, and this text cannot be written out
        raise InvalidInput([FieldError(p, m) for p, m in bad_text], title="invalid text")
    errors: list[FieldError] = []
    type_name = doc.get("type")
    if not isinstance(type_name, str) or not type_name:
        raise InvalidInput(FieldError("type", "required: the resource type, e.g. Mesh or Dataplane"))
    rt = get_type(type_name)

    name = doc.get("name")
    if not isinstance(name, str):
        errors.append(FieldError("name", "required" if name is None else "must be a string"))
        name = ""
    else:
        try:
            check_name(name)
        except ValueError as e:
            errors.append(FieldError("name", str(e)))

    mesh = doc.get("mesh")
    if rt.mesh_scoped:
        if mesh is None:
            errors.append(FieldError("mesh", f"required for {rt.name}"))
        elif not isinstance(mesh, str):
            errors.append(FieldError("mesh", "must be a string"))
            mesh = None
        else:
            try:
                check_name(mesh)
            except ValueError as e:
                errors.append(FieldError("mesh", str(e)))
    elif mesh is not None:
        errors.append(FieldError("mesh", f"must not be set: {rt.name} is not scoped to a mesh"))
        mesh = None

    labels = _labels(doc.get("labels"), errors)
    kri = doc.get("kri")
    if kri is not None and not isinstance(kri, str):
        errors.append(FieldError("kri", f"must be a string (it is set by the server and ignored), got {_kind(kri)}"))
    status = doc.get("status")
    if status is not None and not isinstance(status, Mapping):
        errors.append(
            FieldError("status", f"must be a mapping (it is set by the server and ignored), got {_kind(status)}")
        )

    raw_spec: Any
    if rt.flattened:
        raw_spec = {k: v for k, v in doc.items() if k not in ENVELOPE}
        prefix = ""
    else:
        for k in doc:
            if k not in ENVELOPE and k != "spec":
                errors.append(FieldError(str(k), f"unknown field: {rt.name} puts its fields under spec"))
        raw_spec = doc.get("spec")
        if raw_spec is None:
            raw_spec = {}
        prefix = "spec"
        if not isinstance(raw_spec, Mapping):
            errors.append(FieldError("spec", f"must be a mapping, got {_kind(raw_spec)}"))
            raw_spec = {}

    spec = None
    try:
        spec = rt.spec_model.model_validate(dict(raw_spec))
    except ValidationError as e:
        errors.extend(field_errors(e, prefix))
    if errors or spec is None:
        raise InvalidInput(errors, title=f"invalid {rt.name}")
    meta = ResourceMeta(
        name=name,
        mesh=mesh if rt.mesh_scoped else None,
        labels=labels,
        creation_time=_time(doc.get("creationTime")),
        modification_time=_time(doc.get("modificationTime")),
    )
    return Resource(type=rt.name, meta=meta, spec=spec)


def encode(resource: Resource[Any], *, with_times: bool = True) -> dict[str, Any]:
    """The Universal document of ``resource`` (plain data, ready for YAML or JSON)."""
    rt = get_type(resource.type)
    out: dict[str, Any] = {"type": rt.name, "name": resource.meta.name}
    if rt.mesh_scoped:
        out["mesh"] = resource.meta.mesh
    if resource.meta.labels:
        out["labels"] = dict(sorted(resource.meta.labels.items()))
    if with_times and resource.meta.creation_time is not None:
        out["creationTime"] = resource.meta.creation_time.isoformat()
    if with_times and resource.meta.modification_time is not None:
        out["modificationTime"] = resource.meta.modification_time.isoformat()
    spec = resource.spec_dict()
    if rt.flattened:
        out.update(spec)
    else:
        out["spec"] = spec
    return out


def decode_spec(rt: ResourceType, data: Mapping[str, Any]) -> Any:
    """Validate spec data already known to be good (from a store); ``InvalidInput`` if not."""
    try:
        return rt.spec_model.model_validate(dict(data))
    except ValidationError as e:
        raise InvalidInput(field_errors(e, "spec" if not rt.flattened else ""), title=f"invalid {rt.name}") from None


def field_errors(e: ValidationError, prefix: str = "") -> list[FieldError]:
    """One ``FieldError`` per problem, with a path as written in YAML (see ``base.error_items``)."""
    return [FieldError(join_path(prefix, p), m) for p, m in error_items(e)]


def load_documents(text: str) -> list[Any]:
    """The documents of a (multi-document) YAML or JSON text, empty documents dropped; nesting and
    alias expansion bounded (``atoll.resources.parsing``)."""
    try:
        docs = [d for d in load_yaml_documents(text) if d is not None]
    except TextLimit as e:
        raise InvalidInput(f"invalid YAML: {e}", title="invalid YAML") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise InvalidInput(f"invalid YAML: {where}{problem}", title="invalid YAML") from None
    return docs


def decode_all(text: str) -> list[Resource[Any]]:
    """Decode every document; ``InvalidInput`` lists the problems of all of them, paths prefixed
    with ``[i]`` (document index) when there is more than one document. Nothing is partial."""
    docs = _flatten(load_documents(text))
    if not docs:
        raise InvalidInput("no resources in input", title="empty input")
    many = len(docs) > 1
    out: list[Resource[Any]] = []
    errors: list[FieldError] = []
    for i, d in enumerate(docs):
        try:
            out.append(decode(d))
        except InvalidInput as e:
            errors.extend((e.prefixed(_doc_label(i, d)) if many else e).errors)
    seen: dict[tuple[str, str | None, str], int] = {}
    for i, r in enumerate(out):
        k = (r.type, r.mesh, r.name)
        if k in seen:
            errors.append(FieldError(f"[{i}].name", f'duplicate: {r.type} "{r.name}" appears twice in the input'))
        seen[k] = i
    if errors:
        raise InvalidInput(errors, title="invalid input")
    return out


def _flatten(docs: list[Any]) -> list[Any]:
    """A JSON array (``dump_json`` of several resources) or a REST list ``{items: [...]}`` stands
    for its items."""
    out: list[Any] = []
    for d in docs:
        if isinstance(d, list):
            out.extend(d)
        elif isinstance(d, Mapping) and "type" not in d and isinstance(d.get("items"), list):
            out.extend(d["items"])
        else:
            out.append(d)
    return out


def dump_yaml(resources: Iterable[Resource[Any]] | Resource[Any]) -> str:
    if isinstance(resources, Resource):
        resources = [resources]
    docs = [encode(r) for r in resources]
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, allow_unicode=True)


def dump_json(resources: Sequence[Resource[Any]] | Resource[Any]) -> str:
    if isinstance(resources, Resource):
        return json.dumps(encode(resources), indent=2)
    return json.dumps([encode(r) for r in resources], indent=2)


def _doc_label(i: int, doc: object) -> str:
    return f"[{i}]"


def _labels(value: object, errors: list[FieldError]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        errors.append(FieldError("labels", f"must be a mapping of strings, got {_kind(value)}"))
        return {}
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            errors.append(FieldError(f"labels.{k}", f"label values must be strings, got {_kind(v)} (quote it)"))
            continue
        out[k] = v
    return out


def _time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)
