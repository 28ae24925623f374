"""Resources on the wire: ``Resource`` <-> ``KdsResource`` packed in an ``Any`` in a delta xDS
``Resource``.

``to_wire`` writes the envelope into ``KdsResourceMeta`` and the spec as JSON (the Universal
codec's spelling, so ``decode`` reads it back exactly), and versions the resource by a hash of its
content (type, mesh, name, labels, spec): equal content, equal version, on every CP. ``from_wire``
unpacks and validates with ``atoll.resources.codec.decode``; anything wrong is a ``WireError`` whose
message names the resource and the problem (it becomes the NACK's ``error_detail``). The wire name of
a resource is ``mesh/name`` for mesh-scoped types and ``name`` otherwise (names never hold ``/``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError

from atoll.errors import AtollError, InvalidInput
from atoll.kds import kds_pb2
from atoll.resources.codec import decode, encode
from atoll.resources.meta import Resource
from atoll.resources.parsing import load_json
from atoll.resources.types import get_type
from atoll.xds.vocabulary import type_url_of

KDS_RESOURCE_URL = type_url_of(kds_pb2.KdsResource)


class WireError(AtollError):
    """A resource from the peer cannot be read; the message says which and why."""


def wire_name(name: str, mesh: str | None) -> str:
    return f"{mesh}/{name}" if mesh else name


def split_wire_name(wire: str) -> tuple[str, str | None]:
    """``mesh/name`` -> (name, mesh); ``name`` -> (name, None)."""
    mesh, sep, name = wire.partition("/")
    return (name, mesh) if sep else (wire, None)


def content_version(resource: Resource[Any]) -> str:
    doc = encode(resource, with_times=False)
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def to_wire(resource: Resource[Any]) -> discovery_pb2.Resource:
    """The delta xDS ``Resource`` carrying ``resource`` (name, content version, packed KdsResource)."""
    spec = resource.spec_dict()
    meta = kds_pb2.KdsResourceMeta(
        type=resource.type,
        name=resource.name,
        mesh=resource.mesh or "",
        labels=dict(resource.meta.labels),
        version=resource.meta.version,
    )
    if resource.meta.creation_time is not None:
        meta.creation_time.FromDatetime(resource.meta.creation_time)
    if resource.meta.modification_time is not None:
        meta.modification_time.FromDatetime(resource.meta.modification_time)
    payload = kds_pb2.KdsResource(meta=meta, spec=json.dumps(spec, separators=(",", ":")).encode())
    packed = any_pb2.Any()
    packed.Pack(payload)
    return discovery_pb2.Resource(
        name=wire_name(resource.name, resource.mesh), version=content_version(resource), resource=packed
    )


def from_wire(type_url: str, item: discovery_pb2.Resource) -> Resource[Any]:
    """The validated resource in ``item`` of a response for ``type_url``; ``WireError`` if it is wrong."""
    where = f"{type_url} {item.name or '(unnamed)'}"
    if item.resource.type_url != KDS_RESOURCE_URL:
        raise WireError(f"{where}: payload is {item.resource.type_url or 'empty'}, expected {KDS_RESOURCE_URL}")
    payload = kds_pb2.KdsResource()
    try:
        item.resource.Unpack(payload)
    except DecodeError as e:
        raise WireError(f"{where}: cannot decode the payload: {e}") from None
    meta = payload.meta
    if meta.type != type_url:
        raise WireError(f"{where}: resource type {meta.type!r} in a response for {type_url}")
    try:
        spec = load_json(payload.spec.decode("utf-8")) if payload.spec else {}
    except (UnicodeDecodeError, ValueError) as e:
        raise WireError(f"{where}: spec is not JSON: {e}") from None
    if not isinstance(spec, dict):
        raise WireError(f"{where}: spec must be a JSON object")
    doc: dict[str, Any] = {"type": meta.type, "name": meta.name, "labels": dict(meta.labels)}
    if meta.mesh:
        doc["mesh"] = meta.mesh
    try:
        rt = get_type(meta.type)
        if rt.flattened:
            doc.update({k: v for k, v in spec.items() if k not in doc})
        else:
            doc["spec"] = spec
        resource = decode(doc)
    except InvalidInput as e:
        raise WireError(f"{where}: {e}") from None
    if item.name != wire_name(resource.name, resource.mesh):
        raise WireError(f"{where}: name does not match the resource ({wire_name(resource.name, resource.mesh)})")
    times: dict[str, datetime] = {}
    if meta.HasField("creation_time"):
        times["creation_time"] = meta.creation_time.ToDatetime(tzinfo=UTC)
    if meta.HasField("modification_time"):
        times["modification_time"] = meta.modification_time.ToDatetime(tzinfo=UTC)
    return resource.with_meta(**times) if times else resource
