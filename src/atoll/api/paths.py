"""REST paths of resources, derived from ``ResourceType`` (the only place that spells them).

Mesh-scoped types live under their mesh: ``/meshes/{mesh}/{plural}[/{name}]`` (``dataplanes``,
``meshtrafficpermissions``, ``secrets``); global-scoped ones at the root: ``/{plural}[/{name}]``
(``meshes``, ``zones``, ``zoneingresses``). Clients (the CLI) build URLs with ``collection_path`` and
``item_path``; the app registers routes from the ``*_template`` forms.
"""

from __future__ import annotations

from urllib.parse import quote

from atoll.resources.types import ResourceType

ROOT = "/"
RESOURCE_TYPES = "/_resources"
BOOTSTRAP = "/bootstrap"
OPENAPI = "/openapi.json"
MESHES = "/meshes"
DP_HEALTH = "/dp/health"
DATAPLANES_INSIGHTS = MESHES + "/{mesh}/dataplanes+insights"
ZONES_INSIGHTS = "/zones+insights"
DATAPLANE_XDS = MESHES + "/{mesh}/dataplanes/{name}/xds"
TOKENS_DATAPLANE = "/tokens/dataplane"
TOKENS_ZONE = "/tokens/zone"
TOKENS_REVOCATIONS = "/tokens/revocations"
DATAPLANE_CONFIG_DUMP = MESHES + "/{mesh}/dataplanes/{name}/config-dump"
DATAPLANE_STATS = MESHES + "/{mesh}/dataplanes/{name}/stats"
ZONE_EGRESSES_INSIGHTS = "/zoneegresses+insights"
DP_REQUESTS = "/dp/requests"
DP_RESPONSES = "/dp/responses"


def dataplanes_insights_path(mesh: str) -> str:
    return f"{MESHES}/{quote(mesh, safe='')}/dataplanes+insights"


def dataplane_xds_path(mesh: str, name: str) -> str:
    return f"{MESHES}/{quote(mesh, safe='')}/dataplanes/{quote(name, safe='')}/xds"


def collection_template(rt: ResourceType) -> str:
    """The route of a type's list, with ``{mesh}`` as a parameter for mesh-scoped types."""
    return f"{MESHES}/{{mesh}}/{rt.plural}" if rt.mesh_scoped else f"/{rt.plural}"


def item_template(rt: ResourceType) -> str:
    """The route of one resource: the collection route plus ``/{name}``."""
    return collection_template(rt) + "/{name}"


def all_meshes_template(rt: ResourceType) -> str:
    """The route listing a mesh-scoped type across every mesh (``/dataplanes``)."""
    return f"/{rt.plural}"


def collection_path(rt: ResourceType, mesh: str | None = None) -> str:
    """The list URL path of ``rt`` (in ``mesh`` for mesh-scoped types; across meshes if ``None``)."""
    if rt.mesh_scoped and mesh is not None:
        return f"{MESHES}/{quote(mesh, safe='')}/{rt.plural}"
    return f"/{rt.plural}"


def item_path(rt: ResourceType, name: str, mesh: str | None = None) -> str:
    """The URL path of one resource."""
    if rt.mesh_scoped and mesh is None:
        raise ValueError(f"{rt.name} is mesh-scoped: a mesh is required")
    return collection_path(rt, mesh) + "/" + quote(name, safe="")
