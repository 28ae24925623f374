"""The mesh ``default``: created by a fresh global or standalone control plane, as Kuma does.

``ensure_default_mesh(store)`` runs once at every start of a global or standalone CP (not of a
federated zone: global's ``default`` arrives over KDS), before any component serves. When no Mesh
named ``default`` is stored it creates one, with an empty spec, together with its initial policies
(``atoll.resources.defaults.initial_policies``) in one ``Store.apply``: a crash never leaves it
without its defaults. When the mesh exists nothing is touched, not even its policies.

This follows Kuma 2.14 (``pkg/defaults/mesh.go``, ``EnsureDefaultMeshExists``): the check runs at
start, not while running, so a ``default`` deleted by its user stays deleted until the next start of
a CP, which creates it again. ``--skip-default-mesh`` (``ATOLL_SKIP_DEFAULT_MESH``, Kuma's
``KUMA_DEFAULTS_SKIP_MESH_CREATION``) turns it off. Several CPs sharing one PostgreSQL store may race
to create it; the loser sees ``AlreadyExists`` and is content.
"""

from __future__ import annotations

import logging

from atoll.errors import AlreadyExists, NotFound
from atoll.resources.codec import decode
from atoll.resources.defaults import initial_policies
from atoll.store.protocol import Create, Store

log = logging.getLogger(__name__)

DEFAULT_MESH = "default"


async def ensure_default_mesh(store: Store) -> bool:
    """Create mesh ``default`` and its initial policies unless it exists; True if it was created."""
    try:
        await store.get("Mesh", DEFAULT_MESH)
        return False
    except NotFound:
        pass
    mesh = decode({"type": "Mesh", "name": DEFAULT_MESH})
    policies = initial_policies(mesh)
    try:
        await store.apply([Create(mesh), *(Create(p, exists_ok=True) for p in policies)])
    except AlreadyExists:
        return False
    log.info("created mesh %s with its default policies (%s)", DEFAULT_MESH, ", ".join(p.name for p in policies))
    return True
