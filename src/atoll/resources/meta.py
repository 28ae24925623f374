"""The envelope every resource shares: type, name, mesh, labels, version, timestamps.

``Resource`` is a frozen value: ``type`` names its ``ResourceType`` (see ``types``), ``meta`` carries
identity and bookkeeping, ``spec`` is the frozen pydantic model of that type. Stores hand out new
``Resource`` values with ``meta.version`` bumped on every write; ``version`` 0 means "never stored".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

S = TypeVar("S", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class ResourceKey:
    """Identity of a resource: its type, mesh (``None`` for global-scoped types) and name."""

    type: str
    name: str
    mesh: str | None = None

    def __str__(self) -> str:
        return f"{self.type} {self.mesh}/{self.name}" if self.mesh else f"{self.type} {self.name}"


@dataclass(frozen=True, slots=True)
class ResourceMeta:
    name: str
    mesh: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    version: int = 0
    creation_time: datetime | None = None
    modification_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Resource(Generic[S]):
    type: str
    meta: ResourceMeta
    spec: S

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def mesh(self) -> str | None:
        return self.meta.mesh

    @property
    def key(self) -> ResourceKey:
        return ResourceKey(self.type, self.meta.name, self.meta.mesh)

    def with_meta(self, **changes: Any) -> Resource[S]:
        """A copy with some ``ResourceMeta`` fields replaced."""
        return replace(self, meta=replace(self.meta, **changes))

    def with_spec(self, spec: S) -> Resource[S]:
        return replace(self, spec=spec)

    def spec_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-able data, field names as written in YAML (camelCase).

        Only fields that were set are written (defaults are not filled in), so a decoded document
        encodes back to what the user wrote.
        """
        return self.spec.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True)
