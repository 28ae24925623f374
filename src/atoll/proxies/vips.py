"""VIP allocation: one stable virtual IP per hostname of a mesh, kept in the store.

``VipAllocator.ensure(mesh, wanted, current)`` makes the mesh's ``VipAllocation`` (``atoll.resources.
models.vip_allocation``) give every hostname in ``wanted`` a VIP from the CIDR, and writes it only
when something changes: a new hostname, one that disappeared (marked ``retired``) or came back
(unmarked). ``assign`` is the pure rule:

- a hostname keeps its VIP for as long as it is listed, retired or not: VIPs never move because other
  names come and go, and survive restarts and KDS resyncs (the store holds them);
- a new hostname takes the lowest address of the CIDR that no entry holds (the network and broadcast
  addresses of an IPv4 range with more than two addresses are never used); only when the CIDR has
  none left is a retired entry's VIP given away, the one retired longest ago first;
- a hostname whose VIP lies outside the current CIDR (the option changed) gets a new one;
- when the new hostnames do not all fit, none is allocated (nothing half-allocated, the VIPs given
  before stay as they are) and ``Exhausted`` says how many addresses were missing.

Writes use the store's optimistic concurrency: a write that lost a race (``Conflict``, or
``AlreadyExists`` for the first one) re-reads the stored allocation and assigns again from it, so two
control planes sharing a store never give one VIP to two hostnames. One job; with several instances
on one store, ``enabled`` says whether this one may write (the leader).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from atoll.addresses import Network, parse_cidr
from atoll.errors import AlreadyExists, Conflict, NotFound
from atoll.resources import Resource
from atoll.resources.meta import ResourceMeta
from atoll.resources.models.vip_allocation import (
    VIP_ALLOCATION,
    VIP_ALLOCATION_NAME,
    VipAllocationSpec,
    VipEntry,
)
from atoll.store import Store

log = logging.getLogger(__name__)

DEFAULT_VIP_CIDR = "240.0.0.0/4"
"""Kuma's default range for VIPs (``dns_server.CIDR``)."""

_RETRIES = 8


class Exhausted(Exception):
    """The CIDR has too few free addresses for the new hostnames: none of them was allocated."""

    def __init__(self, mesh: str, cidr: str, wanted: int, free: int) -> None:
        self.mesh, self.cidr, self.wanted, self.free = mesh, cidr, wanted, free
        super().__init__(
            f"mesh {mesh}: {wanted} new hostname(s) need a VIP but only {free} address(es) of {cidr} are free;"
            " none was allocated (widen --vip-cidr)"
        )


def _usable(net: Network) -> tuple[int, int]:
    """The first and last address (as ints) VIPs may take."""
    first, last = int(net.network_address), int(net.broadcast_address)
    if net.version == 4 and net.num_addresses > 2:
        return first + 1, last - 1
    return first, last


def assign(
    mesh: str, cidr: str, entries: Iterable[VipEntry], wanted: Iterable[str], now: datetime
) -> list[VipEntry] | None:
    """The entries after giving every ``wanted`` hostname a VIP (module docstring); None when they
    equal ``entries`` (nothing to write). ``Exhausted`` when the new ones do not all fit."""
    net = parse_cidr(cidr)
    stamp = now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    want = set(wanted)
    old = list(entries)
    kept: dict[str, VipEntry] = {}
    for e in old:
        if ipaddress.ip_address(e.vip) not in net:
            continue  # outside the current CIDR: allocated again below if still wanted
        if e.hostname in want:
            kept[e.hostname] = e.model_copy(update={"retired": None}) if e.retired else e
        else:
            kept[e.hostname] = e if e.retired else e.model_copy(update={"retired": stamp})
    new = sorted(want - kept.keys())
    if new:
        taken = {int(ipaddress.ip_address(e.vip)) for e in kept.values()}
        fresh = _free_addresses(net, taken, len(new))
        reclaim = sorted((e for e in kept.values() if e.retired), key=lambda e: (e.retired or "", e.hostname))
        if len(fresh) + len(reclaim) < len(new):
            raise Exhausted(mesh, cidr, len(new), len(fresh) + len(reclaim))
        for e in reclaim[: len(new) - len(fresh)]:
            del kept[e.hostname]
            fresh.append(int(ipaddress.ip_address(e.vip)))
        for hostname, addr in zip(new, fresh, strict=True):
            kept[hostname] = VipEntry(hostname=hostname, vip=str(ipaddress.ip_address(addr)))
    out = sorted(kept.values(), key=lambda e: e.hostname)
    return None if out == sorted(old, key=lambda e: e.hostname) else out


def _free_addresses(net: Network, taken: set[int], n: int) -> list[int]:
    """Up to ``n`` lowest usable addresses of ``net`` not in ``taken``."""
    first, last = _usable(net)
    out: list[int] = []
    addr = first
    while len(out) < n and addr <= last:
        if addr not in taken:
            out.append(addr)
        addr += 1
    return out


def vip_map(r: Resource[VipAllocationSpec] | None) -> Mapping[str, str]:
    """hostname -> VIP of a stored allocation (empty without one)."""
    return {} if r is None else {e.hostname: e.vip for e in r.spec.entries}


@dataclass(frozen=True, slots=True)
class Allocation:
    """What ``ensure`` did: the stored allocation now (None if there is none) and whether it wrote."""

    resource: Resource[VipAllocationSpec] | None
    written: bool


class VipAllocator:
    """Keeps each mesh's VipAllocation in step with its wanted hostnames (module docstring)."""

    def __init__(self, store: Store, cidr: str = DEFAULT_VIP_CIDR) -> None:
        parse_cidr(cidr)
        self._store = store
        self.cidr = cidr
        self.enabled: Callable[[], bool] = lambda: True
        """False on a CP instance that is not the leader (HA): only the leader allocates; the others
        serve the allocation it writes (its events reach them like any store change)."""

    async def ensure(
        self, mesh: str, wanted: Iterable[str], current: Resource[VipAllocationSpec] | None, now: datetime | None = None
    ) -> Allocation:
        """Give every ``wanted`` hostname of ``mesh`` a VIP, starting from ``current`` (the allocation
        as last seen; re-read on a lost race). ``Exhausted`` if they do not fit; ``NotFound`` if the
        mesh is gone."""
        hostnames = frozenset(wanted)
        for _ in range(_RETRIES):
            entries = current.spec.entries if current is not None else []
            out = assign(mesh, self.cidr, entries, hostnames, now or datetime.now(UTC))
            if out is None:
                return Allocation(current, written=False)
            spec = VipAllocationSpec(cidr=self.cidr, entries=out)
            try:
                if current is None:
                    meta = ResourceMeta(name=VIP_ALLOCATION_NAME, mesh=mesh)
                    stored = await self._store.create(Resource(type=VIP_ALLOCATION.name, meta=meta, spec=spec))
                else:
                    stored = await self._store.update(current.with_spec(spec))
            except (Conflict, AlreadyExists, NotFound) as e:
                if isinstance(e, NotFound) and current is None:
                    raise
                current = await self.read(mesh)
                continue
            added = len(hostnames - {e.hostname for e in entries})
            log.info("mesh %s: VIPs updated (%d entries, %d new)", mesh, len(out), added)
            return Allocation(stored, written=True)
        raise Conflict(f"mesh {mesh}: the VIP allocation kept changing while being written ({_RETRIES} tries)")

    async def read(self, mesh: str) -> Resource[VipAllocationSpec] | None:
        """The stored allocation of ``mesh``, or None."""
        try:
            r: Resource[VipAllocationSpec] = await self._store.get(VIP_ALLOCATION.name, VIP_ALLOCATION_NAME, mesh)
        except NotFound:
            return None
        return r
