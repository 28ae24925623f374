"""Small store helpers for the secrets the security managers keep: read, create-once, update.

Secrets hold bytes base64-encoded in ``data`` (``Secret`` in a mesh, ``GlobalSecret`` outside any
mesh). ``create_once`` is the race-safe "first writer wins": it creates the secret, and when another
writer (a task or another control-plane instance sharing the store) created it first, it reads that
one back and returns its value, so every caller ends up with the same bytes.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from atoll.errors import AlreadyExists, NotFound
from atoll.resources.meta import Resource, ResourceMeta
from atoll.resources.models.secret import SecretSpec
from atoll.store.protocol import ListFilter, Store

SECRET = "Secret"
GLOBAL_SECRET = "GlobalSecret"
MANAGED_LABEL = "atoll.io/managed-by"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def secret_type(mesh: str | None) -> str:
    """``Secret`` for a mesh, ``GlobalSecret`` for ``None``."""
    return SECRET if mesh is not None else GLOBAL_SECRET


def secret_resource(name: str, mesh: str | None, data: bytes) -> Resource[SecretSpec]:
    return Resource(
        type=secret_type(mesh),
        meta=ResourceMeta(name=name, mesh=mesh, labels={MANAGED_LABEL: "atoll"}),
        spec=SecretSpec(data=base64.b64encode(data).decode("ascii")),
    )


def secret_value(r: Resource[Any]) -> bytes:
    spec = r.spec
    assert isinstance(spec, SecretSpec)
    return spec.value


async def read(store: Store, name: str, mesh: str | None) -> bytes | None:
    """The bytes of a secret, ``None`` if it does not exist."""
    try:
        return secret_value(await store.get(secret_type(mesh), name, mesh))
    except NotFound:
        return None


async def read_resource(store: Store, name: str, mesh: str | None) -> Resource[Any] | None:
    try:
        return await store.get(secret_type(mesh), name, mesh)
    except NotFound:
        return None


async def create_once(store: Store, name: str, mesh: str | None, make: Callable[[], Awaitable[bytes]]) -> bytes:
    """The stored value of the secret, created from ``make()`` if absent (first writer wins)."""
    existing = await read(store, name, mesh)
    if existing is not None:
        return existing
    data = await make()
    try:
        await store.create(secret_resource(name, mesh, data))
    except AlreadyExists:
        stored = await read(store, name, mesh)
        if stored is None:  # created and deleted again in between: ours is as good as any
            return await create_once(store, name, mesh, make)
        return stored
    return data


async def names_with_prefix(store: Store, prefix: str, mesh: str | None) -> list[str]:
    """Names of the secrets (of this mesh, or global) starting with ``prefix``, sorted."""
    page = await store.list(ListFilter(type=secret_type(mesh), mesh=mesh, name_prefix=prefix))
    return sorted(r.name for r in page.items if r.mesh == mesh)
