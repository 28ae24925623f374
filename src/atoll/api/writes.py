"""Writing a resource from a ``PUT``: the body checked against the path, then create or update.

``decode_for_path`` validates the body as the resource the path names: envelope fields the body
leaves out (``type``, ``name``, ``mesh``) come from the path, ones that differ from it are errors
naming the field, and every problem is reported at once (``InvalidInput``) before the store is
touched.

``ResourceWriter.write`` creates or updates. With ``If-Match`` it only updates that version (409
otherwise, also when the resource does not exist). Without, it creates, or updates whatever version
is stored; another writer may slip in between the read and the write, and as every round some writer
wins, it retries ``WRITE_ATTEMPTS`` times before reporting the conflict. Creating a Mesh also creates
its initial policies (``atoll.resources.defaults.initial_policies``), keeping any that exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from atoll.api.deps import InitialPolicies
from atoll.errors import AlreadyExists, Conflict, FieldError, InvalidInput, NotFound
from atoll.resources.codec import decode
from atoll.resources.meta import Resource
from atoll.resources.types import ResourceType, all_types, find_type
from atoll.store.protocol import Store

WRITE_ATTEMPTS = 16  # unconditional PUT: read-then-write rounds before giving up with 409


@dataclass(frozen=True, slots=True)
class ResourceWriter:
    """Creates or updates resources in ``store``; a new Mesh gets its initial policies."""

    store: Store
    initial_policies: InitialPolicies

    async def write(self, resource: Resource[Any], version: int | None) -> tuple[Resource[Any], bool]:
        """Create or update; with ``version`` only update that version. Returns (stored, created)."""
        stored, created = await self._write(resource, version)
        if created and resource.type == "Mesh":
            for policy in self.initial_policies(stored):
                try:
                    await self.store.create(policy)
                except AlreadyExists:
                    pass
        return stored, created

    async def _write(self, resource: Resource[Any], version: int | None) -> tuple[Resource[Any], bool]:
        if version is not None:
            try:
                return await self.store.update(resource.with_meta(version=version)), False
            except NotFound:
                raise Conflict(
                    f"{resource.key} does not exist, so If-Match: {version} cannot match; send no If-Match to create it"
                ) from None
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            last = attempt == WRITE_ATTEMPTS
            try:
                current = await self.store.get(resource.type, resource.name, resource.mesh)
            except NotFound:
                try:
                    return await self.store.create(resource), True
                except AlreadyExists:
                    if last:
                        raise
                    continue
            try:
                return await self.store.update(resource.with_meta(version=current.meta.version)), False
            except (Conflict, NotFound):
                if last:
                    raise
        raise AssertionError("unreachable")


def decode_for_path(rt: ResourceType, doc: Any, name: str, mesh: str | None) -> Resource[Any]:
    """Decode ``doc`` as the resource the path names. Envelope fields missing from the body come
    from the path; differing ones are errors. Raises ``InvalidInput`` with every problem found."""
    if not isinstance(doc, Mapping):
        return decode(doc)  # raises the codec's "must be a mapping" error
    doc = dict(doc)
    body_type = doc.setdefault("type", rt.name)
    if body_type != rt.name:
        other = find_type(body_type) if isinstance(body_type, str) else None
        if other is None or other.name != body_type:
            known = ", ".join(sorted(t.name for t in all_types()))
            reason = f'unsupported type "{body_type}"; known types: {known}'
            raise InvalidInput(FieldError("type", reason), title="unsupported type")
        reason = f'"{body_type}" does not match the path, which holds {rt.name} resources'
        raise InvalidInput(FieldError("type", reason), title="type does not match the path")
    errors: list[FieldError] = []
    body_name = doc.setdefault("name", name)
    if body_name != name:
        errors.append(FieldError("name", f'"{body_name}" does not match the name in the path "{name}"'))
    if rt.mesh_scoped:
        body_mesh = doc.setdefault("mesh", mesh)
        if body_mesh != mesh:
            errors.append(FieldError("mesh", f'"{body_mesh}" does not match the mesh in the path "{mesh}"'))
    try:
        resource = decode(doc)
    except InvalidInput as e:
        errors.extend(fe for fe in e.errors if fe.path not in {x.path for x in errors})
        title = e.title
    else:
        title = "the body does not match the path" if errors else ""
    if errors:
        raise InvalidInput(errors, title=title)
    return resource.with_meta(creation_time=None, modification_time=None)
