"""Every REST path of a control plane's API, spelled once, for the server and for its clients.

The app registers routes from the templates here, the CLI (``atoll.cli.client``, ``atoll inspect``,
``atoll token``) and the agent (``atoll.dp.cp_client``, ``atoll.dp.admin_responder``) build URLs from
them; nothing else spells a path. Templates hold ``{mesh}``, ``{name}`` or ``{plural}`` parameters;
``expand`` fills them in, each value percent-encoded as one path segment.

Resource paths derive from a ``ResourceType``: mesh-scoped types live under their mesh,
``/meshes/{mesh}/{plural}[/{name}]`` (``dataplanes``, ``meshtrafficpermissions``, ``secrets``), and
are listed across every mesh at ``/{plural}``; global-scoped ones sit at the root,
``/{plural}[/{name}]`` (``meshes``, ``zones``, ``zoneingresses``). The plural is Kuma's spelling
(``external-services``); ``alias_templates`` gives the routes of a type's older Atoll spellings
(``externalservices``), which the API keeps serving.

Kuma's paths are the canonical ones where Kuma has one: its read-only overviews and insights
(``KUMA_*`` below: ``/meshes/{mesh}/dataplanes/_overview``, ``/mesh-insights``,
``/meshes/{mesh}/service-insights``, ``/zones/_overview``, ...), answered in Kuma's shapes
(``atoll.api.overviews``), a proxy's policies (``/meshes/{mesh}/dataplanes/{name}/policies``, Kuma's
list; Atoll's per-inbound/outbound explanation is at ``.../policies+explained``) and served
configuration (``.../_config``), and the token paths. ``ALIASES`` maps each Atoll spelling that Kuma spells
differently to Kuma's (docs/kuma-compatibility.md prints the table).

This module imports nothing but the standard library (the type of ``ResourceType`` only when type
checking), and ``atoll.api`` imports none of its modules eagerly: a client learns a path without
loading FastAPI, uvicorn or the app (``tests/api/test_paths.py`` checks it in a fresh interpreter).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from atoll.resources.types import ResourceType

ROOT = "/"
RESOURCE_TYPES = "/_resources"
OPENAPI = "/openapi.json"
MESHES = "/meshes"
MESH = MESHES + "/{mesh}"

# Proxies and their agents (zone and standalone CPs).
BOOTSTRAP = "/bootstrap"
DP_HEALTH = "/dp/health"
DP_REQUESTS = "/dp/requests"
DP_RESPONSES = "/dp/responses"

# Tokens (admin only).
TOKENS_DATAPLANE = "/tokens/dataplane"
TOKENS_ZONE = "/tokens/zone"
TOKENS_REVOCATIONS = "/tokens/revocations"

# Inspection: resources with the live state of their proxies or zones.
DATAPLANES_INSIGHTS = MESH + "/dataplanes+insights"
ZONES_INSIGHTS = "/zones+insights"
ZONE_EGRESSES_INSIGHTS = "/zoneegresses+insights"
CONTROL_PLANES = "/control-planes"
DATAPLANE = MESH + "/dataplanes/{name}"
DATAPLANE_XDS = DATAPLANE + "/xds"  # Kuma's: Envoy's config dump (``/config-dump`` is Atoll's older spelling)
DATAPLANE_CONFIG_DUMP = DATAPLANE + "/config-dump"
DATAPLANE_SERVED_XDS = DATAPLANE + "/served-xds"  # the xDS configuration this CP serves the proxy
DATAPLANE_STATS = DATAPLANE + "/stats"
# Policy inspection: which policies shape a proxy's traffic, and which proxies a policy selects.
DATAPLANE_POLICIES = DATAPLANE + "/policies+explained"  # Atoll's explanation; Kuma's list is KUMA_DATAPLANE_POLICIES
POLICY_DATAPLANES = MESH + "/{plural}/{name}/_resources/dataplanes"
# Service names: a mesh's hostnames and their VIPs in this zone (zone and standalone CPs).
MESH_VIPS = MESH + "/_vips"

# Kuma's overviews and insights (read-only, Kuma's JSON shapes).
KUMA_DATAPLANES_OVERVIEW = MESH + "/dataplanes/_overview"
KUMA_DATAPLANE_OVERVIEW = DATAPLANE + "/_overview"
KUMA_DATAPLANE_POLICIES = DATAPLANE + "/policies"  # Kuma's: the policies matched per inbound and outbound
KUMA_DATAPLANE_CONFIG = DATAPLANE + "/_config"  # Kuma's {"xds": ...}: the configuration this CP serves the proxy
KUMA_DATAPLANE_INSIGHTS = MESH + "/dataplane-insights"  # Kuma's shape; Atoll's stored type is at dataplaneinsights
KUMA_DATAPLANE_INSIGHT = KUMA_DATAPLANE_INSIGHTS + "/{name}"
KUMA_MESH_INSIGHTS = "/mesh-insights"
KUMA_MESH_INSIGHT = KUMA_MESH_INSIGHTS + "/{name}"
KUMA_SERVICE_INSIGHTS = MESH + "/service-insights"
KUMA_SERVICE_INSIGHT = KUMA_SERVICE_INSIGHTS + "/{name}"
KUMA_ZONES_OVERVIEW = "/zones/_overview"
KUMA_ZONE_OVERVIEW = "/zones/{name}/_overview"
KUMA_ZONE_INGRESSES_OVERVIEW = "/zoneingresses/_overview"
KUMA_ZONE_INGRESS_OVERVIEW = "/zoneingresses/{name}/_overview"
KUMA_ZONE_EGRESSES_OVERVIEW = "/zoneegresses/_overview"
KUMA_ZONE_EGRESS_OVERVIEW = "/zoneegresses/{name}/_overview"
DATAPLANE_CLUSTERS = DATAPLANE + "/clusters"

ALIASES: dict[str, str] = {
    DATAPLANE_CONFIG_DUMP: DATAPLANE_XDS,
}
"""Atoll's own spelling -> Kuma's path for the same thing, for paths outside the type registry (the
resource types' alias plurals are in ``ResourceType.plural_aliases``). ``DATAPLANE_XDS`` answers
Envoy's config dump as Kuma's does (before Kuma's paths, it answered what ``DATAPLANE_SERVED_XDS``
answers now: the configuration the CP serves)."""

# Any type name under a mesh: the app's catch-all that names the known types when one is unknown.
MESH_ANY_COLLECTION = MESH + "/{plural}"
MESH_ANY_ITEM = MESH_ANY_COLLECTION + "/{name}"


def expand(template: str, **params: str) -> str:
    """``template`` with each ``{param}`` replaced by its value, percent-encoded as one segment."""
    return template.format(**{k: quote(v, safe="") for k, v in params.items()})


def collection_template(rt: ResourceType) -> str:
    """The route of a type's list, with ``{mesh}`` as a parameter for mesh-scoped types."""
    return f"{MESH}/{rt.plural}" if rt.mesh_scoped else f"/{rt.plural}"


def item_template(rt: ResourceType) -> str:
    """The route of one resource: the collection route plus ``/{name}``."""
    return collection_template(rt) + "/{name}"


def all_meshes_template(rt: ResourceType) -> str:
    """The route listing a mesh-scoped type across every mesh (``/dataplanes``)."""
    return f"/{rt.plural}"


def collection_path(rt: ResourceType, mesh: str | None = None) -> str:
    """The list URL path of ``rt`` (in ``mesh`` for mesh-scoped types; across meshes if ``None``)."""
    if rt.mesh_scoped and mesh is not None:
        return expand(collection_template(rt), mesh=mesh)
    return all_meshes_template(rt)


def item_path(rt: ResourceType, name: str, mesh: str | None = None) -> str:
    """The URL path of one resource; mesh-scoped types need their mesh."""
    if rt.mesh_scoped and mesh is None:
        raise ValueError(f"{rt.name} is mesh-scoped: a mesh is required")
    return collection_path(rt, mesh) + "/" + quote(name, safe="")


def alias_templates(rt: ResourceType) -> list[tuple[str, str]]:
    """``(alias, canonical)`` route pairs of ``rt``'s older plurals: collection, item, and (for
    mesh-scoped types) the list across meshes."""
    out: list[tuple[str, str]] = []
    for alias in rt.plural_aliases:
        collection = f"{MESH}/{alias}" if rt.mesh_scoped else f"/{alias}"
        out += [(collection, collection_template(rt)), (collection + "/{name}", item_template(rt))]
        if rt.mesh_scoped:
            out.append((f"/{alias}", all_meshes_template(rt)))
    return out
