"""Blocks several policies share: headers, header modifiers, backend references, SPIFFE ID matches.

``register_policy`` (registers a ``Mesh*`` policy type) lives in ``policy`` with the rest of the
policy skeleton and is re-exported here.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from atoll.resources.base import NAME_CHARS, Check, Port, Spec, Tags, spec_check
from atoll.resources.models.policy import register_policy as register_policy

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~:]+$")


def check_header_name(check: Check, path: str, name: str) -> None:
    if not _HEADER_NAME.match(name):
        check.add(path, f'invalid header name "{name}"')


class HeaderValue(Spec):
    name: str
    value: str

    @spec_check
    def _check(self, check: Check) -> None:
        check_header_name(check, "name", self.name)


class HeaderModifier(Spec):
    """``set``/``add`` headers, ``remove`` header names (request or response)."""

    set: list[HeaderValue] | None = None
    add: list[HeaderValue] | None = None
    remove: list[str] | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        for i, n in enumerate(self.remove or []):
            check_header_name(check, f"remove[{i}]", n)
        if not (self.set or self.add or self.remove):
            check.add("", "at least one of set, add, remove has to be defined")


BackendRefKind = Literal["MeshService", "MeshServiceSubset", "MeshExternalService", "MeshMultiZoneService"]


class BackendRef(Spec):
    """Where a route sends traffic (``MeshHTTPRoute``/``MeshTCPRoute`` ``backendRefs``, mirrors)."""

    kind: BackendRefKind
    name: str | None = None
    namespace: str | None = None
    section_name: str | None = None
    labels: Tags | None = None
    tags: Tags | None = None
    port: Port | None = None
    weight: int | None = Field(default=None, ge=0)

    @spec_check
    def _check(self, check: Check) -> None:
        if self.name is None and not self.labels:
            check.add("name", f"must be set with kind {self.kind}")
        if self.name is not None and not NAME_CHARS.match(self.name):
            check.add("name", "invalid characters: use lowercase letters, digits, '-', '.' and '_'")
        if self.labels and (self.name is not None or self.namespace is not None):
            check.add("labels", "either labels or name and namespace must be specified")
        if self.tags and self.kind != "MeshServiceSubset":
            check.add("tags", f"must not be set with kind {self.kind}")
        if self.kind == "MeshServiceSubset" and self.port is not None:
            check.add("port", "must not be set with kind MeshServiceSubset")


class SpiffeId(Spec):
    type: Literal["Exact", "Prefix"]
    value: str

    @spec_check
    def _check(self, check: Check) -> None:
        if not self.value.startswith("spiffe://"):
            check.add("value", f'must be a SPIFFE ID starting with "spiffe://", got "{self.value}"')


class SpiffeMatch(Spec):
    """An inbound rule match on the caller's identity."""

    spiffe_id: SpiffeId = Field(alias="spiffeID")
