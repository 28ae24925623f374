"""Secret: mesh-scoped opaque data (``data`` is base64), e.g. CA keys or TLS material (flattened)."""

from __future__ import annotations

import base64

from atoll.resources.base import Base64, Spec
from atoll.resources.types import Scope, register_type


class SecretSpec(Spec):
    data: Base64

    @property
    def value(self) -> bytes:
        return base64.b64decode(self.data)


SECRET = register_type("Secret", SecretSpec, Scope.MESH, plural="secrets", secret=True)
