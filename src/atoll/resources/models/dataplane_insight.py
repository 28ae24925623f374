"""DataplaneInsight: a zone's view of one proxy (xDS connection, versions), synced to global.

A built-in type like every other model here, so every process knows it whatever it imported first
(the REST API, the CLI and KDS see the same registry). A zone CP does not store insights: its KDS
client builds these resources from the inventory callable it is given and sends them up. Global
stores them (renamed and labelled like the Dataplane they describe) and answers
``GET /meshes/{m}/dataplanes+insights`` from them. The spec is the inventory JSON as the zone
reports it, under ``insight``; owner ``zone`` makes global's REST API refuse writes.
"""

from __future__ import annotations

from typing import Any

from atoll.resources.base import Spec
from atoll.resources.types import Scope, register_type


class DataplaneInsightSpec(Spec):
    insight: dict[str, Any]


DATAPLANE_INSIGHT = register_type(
    "DataplaneInsight", DataplaneInsightSpec, Scope.MESH, plural="dataplaneinsights", flattened=False, owner="zone"
)
