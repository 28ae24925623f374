"""GlobalSecret: opaque data (``data`` is base64) outside any mesh, e.g. zone-token signing keys (flattened)."""

from __future__ import annotations

from atoll.resources.models.secret import SecretSpec
from atoll.resources.types import Scope, register_type

GLOBAL_SECRET = register_type("GlobalSecret", SecretSpec, Scope.GLOBAL, plural="globalsecrets", secret=True)
