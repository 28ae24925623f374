"""What policy selection reads of one Dataplane (``ProxyRefs``, ``InboundRef``), read once per Dataplane.

``ProxyRefs.of(dataplane)`` gives the inbounds that have a port (the ones served, in spec order) with
their tags, name and port, and the outbounds as (service, tags). It is memoized by the identity of the
Dataplane's spec (specs are frozen, and the control plane's mirror keeps the same object while a
Dataplane does not change), so building a new mesh view does not re-read every Dataplane. The memo
holds the spec it is keyed on (so an id is never reused while its entry lives) and is cleared when it
grows past ``REFS_MEMO_MAX`` entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from atoll.resources.meta import Resource
from atoll.resources.models.dataplane import DataplaneSpec, Inbound
from atoll.topology.tags import Tags

__all__ = ["REFS_MEMO_MAX", "InboundRef", "ProxyRefs"]

REFS_MEMO_MAX = 20_000


@dataclass(frozen=True, slots=True)
class InboundRef:
    """What selection needs of one inbound: its tags, name and port."""

    tags: Tags
    name: str | None
    port: int | None


@dataclass(frozen=True, slots=True)
class ProxyRefs:
    """What selection reads of one Dataplane: its inbounds that have a port (the ones served, in
    spec order) and their ``InboundRef``, and its outbounds as (service, tags)."""

    served: tuple[Inbound, ...]
    inbounds: tuple[InboundRef, ...]
    outbounds: tuple[tuple[str, Mapping[str, str]], ...]

    @classmethod
    def of(cls, dataplane: Resource[DataplaneSpec]) -> ProxyRefs:
        """Memoized per spec object (specs are frozen): a Dataplane that did not change is read once,
        not once per mesh view (module docstring)."""
        spec = dataplane.spec
        hit = _REFS_MEMO.get(id(spec))
        if hit is not None and hit[0] is spec:
            return hit[1]
        net = spec.networking
        served = tuple(ib for ib in net.inbound if ib.port is not None)
        refs = cls(
            served=served,
            inbounds=tuple(InboundRef(tags=Tags(ib.tags), name=ib.name, port=ib.port) for ib in served),
            outbounds=tuple((ob.service, ob.tags or {}) for ob in net.outbound),
        )
        if len(_REFS_MEMO) >= REFS_MEMO_MAX:
            _REFS_MEMO.clear()
        _REFS_MEMO[id(spec)] = (spec, refs)  # holds the spec: its id is not reused while the entry lives
        return refs


_REFS_MEMO: dict[int, tuple[DataplaneSpec, ProxyRefs]] = {}
