"""GlobalSecret: opaque data (``data`` is base64) outside any mesh, e.g. zone-token signing keys (flattened)."""

from __future__ import annotations

from atoll.resources.models.secret import SecretSpec
from atoll.resources.types import ResourceType, Scope, register

GLOBAL_SECRET = register(
    ResourceType(
        name="GlobalSecret",
        spec_model=SecretSpec,
        scope=Scope.GLOBAL,
        flattened=True,
        plural="globalsecrets",
        secret=True,
    )
)
