"""Writing a resource from a ``PUT`` or ``DELETE``: the body checked against the path, then create,
update or delete.

``decode_for_path`` validates the body as the resource the path names: envelope fields the body
leaves out (``type``, ``name``, ``mesh``) come from the path, ones that differ from it are errors
naming the field, and every problem is reported at once (``InvalidInput``) before the store is
touched.

``ResourceWriter.write`` creates or updates. With ``If-Match`` it only updates that version (409
otherwise, also when the resource does not exist). Without, the last writer wins: a create, or when
the resource exists one ``Put`` (replace whatever version is stored, or create it again if it was
deleted meanwhile) in one transaction, so concurrent unconditional writers never see a version
conflict.

A Mesh is created together with its initial policies (``atoll.resources.defaults.initial_policies``,
keeping any that exist) in one ``Store.apply``: a crash cannot leave a mesh with some of its
defaults. Like Kuma, defaults are made when the mesh is created, never on later writes, with one
exception for meshes that older versions (which created them one by one) left half-created: a PUT
of an existing mesh completes its missing defaults when the state can only be such a left-over —
the mesh was never updated since its creation (version 1), some but not all of its defaults exist,
and those are untouched (version 1). A user who deleted all defaults, or edited the mesh or a
default since, never gets them back. (A user who deleted some of a never-updated mesh's defaults
and then PUTs it unchanged does: that state cannot be told apart from the half-created one.)

``ResourceWriter.delete`` refuses to delete a Mesh that still has Dataplanes, with Kuma's reason
(``mesh: unable to delete mesh, there are still some dataplanes attached``, a 400), unless forced
(``DELETE /meshes/{name}?force=true``, ``atoll delete mesh NAME --force``): a forced delete removes
the mesh with everything in it, and the proxies of those Dataplanes lose their configuration.
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
from atoll.store.protocol import Create, EventKind, ListFilter, Put, Store

WRITE_ATTEMPTS = 16  # unconditional PUT of a Mesh: read-then-write rounds before giving up with 409


@dataclass(frozen=True, slots=True)
class ResourceWriter:
    """Creates or updates resources in ``store``; a new Mesh gets its initial policies."""

    store: Store
    initial_policies: InitialPolicies

    async def write(self, resource: Resource[Any], version: int | None) -> tuple[Resource[Any], bool]:
        """Create or update; with ``version`` only update that version. Returns (stored, created)."""
        if version is not None:
            try:
                return await self.store.update(resource.with_meta(version=version)), False
            except NotFound:
                raise Conflict(
                    f"{resource.key} does not exist, so If-Match: {version} cannot match; send no If-Match to create it"
                ) from None
        if resource.type == "Mesh":
            return await self._write_mesh(resource)
        try:
            return await self.store.create(resource), True
        except AlreadyExists:
            pass
        (event,) = await self.store.apply([Put(resource.with_meta(version=0))])
        return event.resource, event.kind is EventKind.CREATED

    async def delete(self, rt: ResourceType, name: str, mesh: str | None, version: int | None, *, force: bool) -> None:
        """Delete one resource; a Mesh with Dataplanes only when ``force`` (see the module docstring)."""
        if rt.name == "Mesh" and not force:
            page = await self.store.list(ListFilter("Dataplane", mesh=name), limit=3)
            if page.total:
                some = ", ".join(r.name for r in page.items) + (", ..." if page.total > len(page.items) else "")
                reason = (
                    "unable to delete mesh, there are still some dataplanes attached"
                    f" ({page.total}: {some}); delete them first, or force it with ?force=true"
                    f" (atoll delete mesh {name} --force)"
                )
                raise InvalidInput(FieldError("mesh", reason), title="the mesh still has dataplanes")
        await self.store.delete(rt.name, name, mesh, version=version)

    async def _write_mesh(self, mesh: Resource[Any]) -> tuple[Resource[Any], bool]:
        """Create the mesh with its defaults in one transaction, or update it (completing the defaults
        of a half-created one, see the module docstring)."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            last = attempt == WRITE_ATTEMPTS
            try:
                current = await self.store.get("Mesh", mesh.name)
            except NotFound:
                defaults = [Create(p, exists_ok=True) for p in self.initial_policies(mesh)]
                try:
                    events = await self.store.apply([Create(mesh), *defaults])
                except AlreadyExists:
                    if last:
                        raise
                    continue
                return events[0].resource, True
            missing = [Create(p, exists_ok=True) for p in await self._left_over_defaults(current)]
            try:
                events = await self.store.apply([Put(mesh.with_meta(version=current.meta.version)), *missing])
            except (Conflict, NotFound):
                if last:
                    raise
                continue
            return events[0].resource, False
        raise AssertionError("unreachable")

    async def _left_over_defaults(self, mesh: Resource[Any]) -> list[Resource[Any]]:
        """The defaults a half-created ``mesh`` lacks; none unless it can only be half-created."""
        if mesh.meta.version != 1:
            return []
        defaults = self.initial_policies(mesh)
        present: list[Resource[Any]] = []
        missing: list[Resource[Any]] = []
        for policy in defaults:
            try:
                present.append(await self.store.get(policy.type, policy.name, policy.mesh))
            except NotFound:
                missing.append(policy)
        if not present or any(p.meta.version != 1 for p in present):
            return []
        return missing


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
