"""Labels and names of synced copies.

Copies made by KDS carry ``kuma.io/origin`` (``global`` or ``zone``) and, for zone-originated
resources, ``kuma.io/zone``. Global stores a zone's resource under ``hashed_name``: the original
name plus ``-`` and 8 hex digits of a hash of (zone, mesh, name), so two zones may both have a
``web-1``; the original name stays in ``kuma.io/display-name``. The hash is the same for every type,
so a Dataplane and its DataplaneInsight get the same global name.
"""

from __future__ import annotations

import hashlib
from typing import Any

from atoll.resources.meta import Resource

ORIGIN = "kuma.io/origin"
ZONE = "kuma.io/zone"
DISPLAY_NAME = "kuma.io/display-name"
ORIGIN_GLOBAL = "global"
ORIGIN_ZONE = "zone"

MAX_NAME = 253


def hashed_name(name: str, zone: str, mesh: str | None) -> str:
    """``name-<8 hex>``, stable for (zone, mesh, name); the name is cut so the result fits 253 chars."""
    digest = hashlib.sha256(f"{zone}\x00{mesh or ''}\x00{name}".encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9].rstrip('.-_')}-{digest}"


def from_zone(resource: Resource[Any], zone: str) -> Resource[Any]:
    """Global's copy of a zone's resource: renamed, labelled with origin, zone (forced) and display name."""
    labels = dict(resource.meta.labels)
    labels[ORIGIN] = ORIGIN_ZONE
    labels[ZONE] = zone
    labels[DISPLAY_NAME] = resource.name
    return resource.with_meta(
        name=hashed_name(resource.name, zone, resource.mesh),
        labels=labels,
        version=0,
        creation_time=None,
        modification_time=None,
    )


def from_global(resource: Resource[Any]) -> Resource[Any]:
    """A zone's copy of a global resource: same name, labelled ``kuma.io/origin: global``."""
    labels = dict(resource.meta.labels)
    labels[ORIGIN] = ORIGIN_GLOBAL
    return resource.with_meta(labels=labels, version=0, creation_time=None, modification_time=None)


def origin(resource: Resource[Any]) -> str | None:
    return resource.meta.labels.get(ORIGIN)


def zone_of(resource: Resource[Any]) -> str | None:
    return resource.meta.labels.get(ZONE)
