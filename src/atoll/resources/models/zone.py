"""Zone: one zone known to the global control plane; ``enabled: false`` cuts it off (flattened)."""

from __future__ import annotations

from atoll.resources.base import Spec
from atoll.resources.types import Scope, register_type


class ZoneSpec(Spec):
    enabled: bool | None = None

    @property
    def is_enabled(self) -> bool:
        return self.enabled is not False


ZONE = register_type("Zone", ZoneSpec, Scope.GLOBAL, plural="zones")
