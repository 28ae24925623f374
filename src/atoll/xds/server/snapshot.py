"""Immutable, versioned xDS snapshots: what one proxy should have, per type, per resource name.

A ``VersionedResource`` wraps one Envoy message. It is serialized exactly once, when it is built: the
``Any`` bytes, a per-resource version (a hash of those bytes) and the two wire fragments the stream pump
splices into responses (the SotW ``resources`` field and the delta ``Resource`` field) are computed up
front and shared by every stream and every snapshot that holds the same object. Build a resource once and
reuse the object across the snapshots of many proxies to share its bytes across them as well.

Type URLs, the push order, resource names and the walkers of references come from
``atoll.xds.vocabulary``. A ``Snapshot`` maps type URL -> {name -> VersionedResource}. Its per-type version (the SotW
``version_info``) is a hash over the (name, version) pairs of that type. ``problems()`` lists dangling
references (an EDS cluster without its ClusterLoadAssignment, an RDS name no RouteConfiguration carries, an
ADS-delivered SDS secret that is missing); ``ensure_consistent()`` raises ``InconsistentSnapshot`` — a local
generation error, never the peer's fault.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from atoll.errors import AtollError
from atoll.xds.vocabulary import (
    ENDPOINT,
    KNOWN_TYPES,
    PUSH_ORDER,
    ROUTE,
    SERVED_REFERENCES,
    kind_of,
    missing_references,
    resource_name,
    served_references,
    type_url_of,
)


class InconsistentSnapshot(AtollError):
    """A snapshot references resources it does not carry (a local generation error)."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("inconsistent xDS snapshot: " + "; ".join(self.problems))


def _hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_bytes_field(number: int, data: bytes) -> bytes:
    """The wire encoding of one length-delimited field (string, bytes or message)."""
    return _varint((number << 3) | 2) + _varint(len(data)) + data


@dataclass(frozen=True, slots=True, eq=False)
class VersionedResource:
    """One resource, serialized once. Build with ``VersionedResource.of(message)``."""

    type_url: str
    name: str
    version: str
    message: Message = field(repr=False)
    any_bytes: bytes = field(repr=False)
    #: ``resources`` field (number 2) of a DiscoveryResponse holding this resource's Any.
    sotw_field: bytes = field(repr=False)
    #: ``resources`` field (number 2) of a DeltaDiscoveryResponse holding a Resource{name, version, Any}.
    delta_field: bytes = field(repr=False)
    _refs: list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = field(default_factory=list, repr=False)

    def references(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """(EDS names, RDS names, ADS secret names) this resource uses; computed once, for the
        consistency check of every snapshot that holds it."""
        refs = self._refs
        if not refs:
            refs.append(served_references(self.message))
        return refs[0]

    @classmethod
    def of(cls, message: Message, *, name: str | None = None) -> VersionedResource:
        type_url = type_url_of(message)
        if type_url not in KNOWN_TYPES:
            raise ValueError(f"not an xDS resource type this server serves: {type_url}")
        rname = resource_name(message) if name is None else name
        if not rname:
            raise ValueError(f"{type_url} resource has an empty name")
        value = message.SerializeToString(deterministic=True)
        version = _hash(value)
        any_bytes = encode_bytes_field(1, type_url.encode()) + encode_bytes_field(2, value)
        resource = (
            encode_bytes_field(3, rname.encode())
            + encode_bytes_field(1, version.encode())
            + encode_bytes_field(2, any_bytes)
        )
        return cls(
            type_url=type_url,
            name=rname,
            version=version,
            message=message,
            any_bytes=any_bytes,
            sotw_field=encode_bytes_field(2, any_bytes),
            delta_field=encode_bytes_field(2, resource),
        )

    def to_any(self) -> any_pb2.Any:
        return any_pb2.Any.FromString(self.any_bytes)

    def to_delta_resource(self) -> discovery_pb2.Resource:
        return discovery_pb2.Resource(name=self.name, version=self.version, resource=self.to_any())


def _type_version(resources: Mapping[str, VersionedResource]) -> str:
    h = hashlib.blake2b(digest_size=8)
    for name in sorted(resources):
        h.update(name.encode())
        h.update(b"\0")
        h.update(resources[name].version.encode())
        h.update(b"\0")
    return h.hexdigest()


_EMPTY: Mapping[str, VersionedResource] = MappingProxyType({})


class Snapshot:
    """What one proxy should have: type URL -> {name -> VersionedResource}. Immutable."""

    __slots__ = ("_problems", "_resources", "_versions")

    def __init__(self, resources: Mapping[str, Mapping[str, VersionedResource]]) -> None:
        frozen: dict[str, Mapping[str, VersionedResource]] = {}
        for type_url, by_name in resources.items():
            if type_url not in KNOWN_TYPES:
                raise ValueError(f"unknown xDS type URL in snapshot: {type_url}")
            for name, res in by_name.items():
                if res.name != name or res.type_url != type_url:
                    raise ValueError(f"resource {res.type_url}/{res.name} filed under {type_url}/{name}")
            frozen[type_url] = MappingProxyType(dict(by_name))
        self._resources: Mapping[str, Mapping[str, VersionedResource]] = MappingProxyType(frozen)
        self._versions: Mapping[str, str] = MappingProxyType(
            {t: _type_version(frozen.get(t, _EMPTY)) for t in PUSH_ORDER}
        )
        self._problems: tuple[str, ...] | None = None

    def replace(self, items: Iterable[VersionedResource]) -> Snapshot:
        """This snapshot with ``items`` put in place of the resources of the same type and name (or
        added). Types the items do not touch keep their mappings and versions (nothing is rehashed,
        and a stream sees them unchanged at a glance); replacing existing names keeps the consistency
        verdict, since references are by name."""
        updates: dict[str, dict[str, VersionedResource]] = {}
        for res in items:
            if res.type_url not in KNOWN_TYPES:
                raise ValueError(f"unknown xDS type URL in snapshot: {res.type_url}")
            updates.setdefault(res.type_url, {})[res.name] = res
        if not updates:
            return self
        new = Snapshot.__new__(Snapshot)
        resources = dict(self._resources)
        versions = dict(self._versions)
        same_names = True
        for type_url, changed in updates.items():
            current = self._resources.get(type_url, _EMPTY)
            same_names = same_names and all(name in current for name in changed)
            merged = MappingProxyType({**current, **changed})
            resources[type_url] = merged
            versions[type_url] = _type_version(merged)
        new._resources = MappingProxyType(resources)
        new._versions = MappingProxyType(versions)
        new._problems = self._problems if same_names else None
        return new

    @classmethod
    def from_resources(
        cls, items: Iterable[Message | VersionedResource], *, previous: Snapshot | None = None
    ) -> Snapshot:
        """Build from messages (serialized here) and/or pre-built ``VersionedResource``s (shared).

        With ``previous`` (the proxy's last snapshot), a type whose resources are the very same
        objects as there keeps its mapping and version: nothing is rehashed, and a stream sees at a
        glance that the type did not change."""
        by_type: dict[str, dict[str, VersionedResource]] = {}
        for item in items:
            res = item if isinstance(item, VersionedResource) else VersionedResource.of(item)
            bucket = by_type.setdefault(res.type_url, {})
            if res.name in bucket:
                raise ValueError(f"duplicate {res.type_url} resource named {res.name!r}")
            bucket[res.name] = res
        if previous is None:
            return cls(by_type)
        for type_url in by_type:
            if type_url not in KNOWN_TYPES:
                raise ValueError(f"unknown xDS type URL in snapshot: {type_url}")
        new = Snapshot.__new__(Snapshot)
        resources: dict[str, Mapping[str, VersionedResource]] = {}
        versions: dict[str, str] = {}
        for type_url in PUSH_ORDER:
            bucket = by_type.get(type_url, {})
            before = previous._resources.get(type_url, _EMPTY)
            if len(before) == len(bucket) and all(before.get(n) is r for n, r in bucket.items()):
                if before:
                    resources[type_url] = before
                versions[type_url] = previous._versions[type_url]
            else:
                if bucket:
                    resources[type_url] = MappingProxyType(bucket)
                versions[type_url] = _type_version(bucket)
        new._resources = MappingProxyType(resources)
        new._versions = MappingProxyType(versions)
        new._problems = None
        return new

    @classmethod
    def build(
        cls,
        *,
        listeners: Iterable[Message | VersionedResource] = (),
        routes: Iterable[Message | VersionedResource] = (),
        clusters: Iterable[Message | VersionedResource] = (),
        endpoints: Iterable[Message | VersionedResource] = (),
        secrets: Iterable[Message | VersionedResource] = (),
    ) -> Snapshot:
        return cls.from_resources([*listeners, *routes, *clusters, *endpoints, *secrets])

    def resources(self, type_url: str) -> Mapping[str, VersionedResource]:
        return self._resources.get(type_url, _EMPTY)

    def version(self, type_url: str) -> str:
        """The per-type version: a hash over the (name, version) pairs of that type."""
        v = self._versions.get(type_url)
        return v if v is not None else _type_version(_EMPTY)

    def __iter__(self) -> Iterator[VersionedResource]:
        for type_url in PUSH_ORDER:
            yield from self.resources(type_url).values()

    def __repr__(self) -> str:
        counts = ", ".join(f"{t.rsplit('.', 1)[-1]}={len(self.resources(t))}" for t in PUSH_ORDER)
        return f"Snapshot({counts})"

    # --- consistency -------------------------------------------------------------------------------

    def problems(self) -> tuple[str, ...]:
        """Dangling references, one sentence each; empty when the snapshot is consistent (computed once)."""
        if self._problems is None:
            self._problems = self._find_problems()
        return self._problems

    def _find_problems(self) -> tuple[str, ...]:
        out: list[str] = []
        for d in missing_references(self._resources, VersionedResource.references, SERVED_REFERENCES):
            owner = f"{kind_of(d.owner_type).lower()} {d.owner!r}"
            if d.missing_type == ENDPOINT:
                out.append(f"{owner} uses EDS name {d.missing!r} but no ClusterLoadAssignment has it")
            elif d.missing_type == ROUTE:
                out.append(f"{owner} uses RDS name {d.missing!r} but no RouteConfiguration has it")
            else:
                out.append(f"{owner} uses SDS secret {d.missing!r} but the snapshot lacks it")
        return tuple(out)

    def consistent(self) -> bool:
        return not self.problems()

    def ensure_consistent(self) -> None:
        problems = self.problems()
        if problems:
            raise InconsistentSnapshot(problems)


__all__ = [
    "InconsistentSnapshot",
    "Snapshot",
    "VersionedResource",
    "encode_bytes_field",
]
