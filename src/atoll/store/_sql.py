"""The ``resources`` table as both SQL backends use it: its statements and row <-> resource.

The two schemas have the same columns (``COLUMNS``) and the same key ``(type, mesh, name)``, with
``""`` for the mesh of a global-scoped resource. The backends differ only in the driver's
placeholder (``?`` for sqlite3, ``%s`` for psycopg) and in how a column holds JSON (text, JSONB)
and times (ISO text, ``timestamptz``). ``SqlRows`` takes those differences and writes every
statement and every conversion once, so a statement cannot say one thing in one backend and
another in the other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from atoll.resources.codec import decode_spec
from atoll.resources.meta import Resource, ResourceMeta
from atoll.resources.types import get_type
from atoll.store._common import not_found
from atoll.store.protocol import EventKind, ListFilter

COLUMNS = "type, mesh, name, version, labels, spec, creation_time, modification_time"
"""The columns of a stored resource, in the order of ``resource_from_row``'s arguments."""

Params = tuple[object, ...]
Clause = tuple[str, list[object]]
"""A condition of a ``WHERE`` and the values of its placeholders."""


@dataclass(frozen=True, slots=True)
class Listing:
    """The statements of one ``Store.list``: ``count`` takes ``params``; ``page`` takes them, limit and offset."""

    count: str
    page: str
    params: list[object]


def mesh_column(mesh: str | None) -> str:
    return mesh or ""


def resource_from_row(
    type: str,
    mesh: str,
    name: str,
    version: int,
    labels: Mapping[str, str],
    spec: Mapping[str, Any],
    creation_time: datetime,
    modification_time: datetime,
) -> Resource[Any]:
    """Rebuild a stored resource; the spec is validated by its type's model again."""
    rt = get_type(type)
    meta = ResourceMeta(
        name=name,
        mesh=mesh or None,
        labels=dict(labels),
        version=int(version),
        creation_time=creation_time,
        modification_time=modification_time,
    )
    return Resource(type=rt.name, meta=meta, spec=decode_spec(rt, spec))


@dataclass
class SqlRows:
    """The statements on ``resources`` and the conversions of its rows, for one SQL driver."""

    placeholder: str
    write_json: Callable[[Any], object]
    write_time: Callable[[datetime | None], object]
    read_json: Callable[[Any], Mapping[str, Any]]
    read_time: Callable[[Any], datetime]
    name_prefix: Callable[[str], Clause]
    """The clause of ``ListFilter.name_prefix``."""
    labels: Callable[[Mapping[str, str]], list[Clause]]
    """The clauses of ``ListFilter.labels``."""

    insert: str = field(init=False)
    """Insert a row (``params``; ``write`` picks it for a created resource)."""
    select: str = field(init=False)
    """The row of one resource (``key``)."""
    select_stored: str = field(init=False)
    """What ``plan_put`` needs to know of a stored resource (``key``; ``stored`` reads the row)."""
    update: str = field(init=False)
    """Overwrite a row with a new version (``write`` picks it for an updated resource)."""
    delete: str = field(init=False)
    """Delete one row (``key``)."""
    in_mesh: str = field(init=False)
    """The rows of the resources in a mesh (completed with ``SELECT`` or ``DELETE``)."""
    set_revision: str = field(init=False)
    """Store the store-wide revision after a write."""

    def __post_init__(self) -> None:
        p = self.placeholder
        key = f"type = {p} AND mesh = {p} AND name = {p}"
        self.insert = f"INSERT INTO resources ({COLUMNS}) VALUES ({', '.join([p] * 8)})"
        self.select = f"SELECT {COLUMNS} FROM resources WHERE {key}"
        self.select_stored = f"SELECT version, creation_time FROM resources WHERE {key}"
        self.update = (
            f"UPDATE resources SET version = {p}, labels = {p}, spec = {p}, modification_time = {p} WHERE {key}"
        )
        self.delete = f"DELETE FROM resources WHERE {key}"
        self.in_mesh = f"FROM resources WHERE mesh = {p}"
        self.set_revision = f"UPDATE store_revision SET revision = {p} WHERE id = 1"

    @staticmethod
    def key(type: str, name: str, mesh: str | None) -> Params:
        return (type, mesh_column(mesh), name)

    def params(self, r: Resource[Any]) -> Params:
        """The values of ``COLUMNS`` for ``r``."""
        return (
            r.type,
            mesh_column(r.mesh),
            r.name,
            r.meta.version,
            self.write_json(dict(r.meta.labels)),
            self.write_json(r.spec_dict()),
            self.write_time(r.meta.creation_time),
            self.write_time(r.meta.modification_time),
        )

    def write(self, kind: EventKind, stored: Resource[Any]) -> tuple[str, Params]:
        """The statement and parameters that store ``stored``: an insert when created, else an update."""
        if kind is EventKind.CREATED:
            return self.insert, self.params(stored)
        meta = stored.meta
        values = (meta.version, self.write_json(dict(meta.labels)), self.write_json(stored.spec_dict()))
        return self.update, (*values, self.write_time(meta.modification_time), *self.key_of(stored))

    @staticmethod
    def key_of(r: Resource[Any]) -> Params:
        return SqlRows.key(r.type, r.name, r.mesh)

    def stored(self, row: Sequence[Any] | None) -> tuple[int, datetime] | None:
        """(version, creation time) from a ``select_stored`` row, ``None`` for no row."""
        return None if row is None else (int(row[0]), self.read_time(row[1]))

    def resource(self, row: Sequence[Any]) -> Resource[Any]:
        """The resource in a row of ``COLUMNS``; its spec is validated by its type's model again."""
        type, mesh, name, version, labels, spec, ctime, mtime = row
        labels, spec = self.read_json(labels), self.read_json(spec)
        return resource_from_row(type, mesh, name, version, labels, spec, self.read_time(ctime), self.read_time(mtime))

    def found(self, row: Sequence[Any] | None, type: str, name: str, mesh: str | None) -> Resource[Any]:
        """The resource in ``row``; ``NotFound`` when the select found none."""
        if row is None:
            raise not_found(type, name, mesh)
        return self.resource(row)

    def listing(self, filter: ListFilter) -> Listing:
        """The statements that count and page the resources ``filter`` matches, by mesh then name."""
        p = self.placeholder
        clauses: list[Clause] = [(f"type = {p}", [filter.type])]
        if filter.mesh is not None:
            clauses.append((f"mesh = {p}", [filter.mesh]))
        if filter.name_prefix:
            clauses.append(self.name_prefix(filter.name_prefix))
        if filter.labels:
            clauses.extend(self.labels(filter.labels))
        cond = " AND ".join(c for c, _ in clauses)
        params = [v for _, values in clauses for v in values]
        page = f"SELECT {COLUMNS} FROM resources WHERE {cond} ORDER BY mesh, name LIMIT {p} OFFSET {p}"
        return Listing(f"SELECT count(*) FROM resources WHERE {cond}", page, params)
