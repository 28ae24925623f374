"""VipAllocation: the virtual IPs a zone control plane gave the names of one mesh (flattened).

Written by the control plane only (``atoll.proxies.vips.VipAllocator``), one per mesh, named
``vips``; read-only over the REST API (``owner`` ``cp``). ``entries[]{hostname, vip, retired}``:
``hostname`` keeps ``vip`` for as long as the resource exists; ``retired`` (RFC 3339) is set while no
destination of the mesh renders that hostname any more (the VIP may then be given to a new name,
oldest retired first, but only once the CIDR has no never-used address left). ``cidr`` is the range
the addresses were taken from. Deleting the mesh deletes it (mesh-scoped). Each zone allocates its
own; KDS syncs it up to global (renamed and labelled like a Dataplane, for ``atoll inspect vips``
there), never to other zones.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field

from atoll.resources.base import Check, Spec, spec_check
from atoll.resources.types import Scope, register_type

VIP_ALLOCATION_NAME = "vips"
"""The name of the one VipAllocation of each mesh."""


class VipEntry(Spec):
    hostname: str = Field(min_length=1, max_length=253)
    vip: str
    retired: str | None = None

    @spec_check
    def _check(self, check: Check) -> None:
        try:
            ipaddress.ip_address(self.vip)
        except ValueError:
            check.add("vip", f'must be an IP address, got "{self.vip}"')


class VipAllocationSpec(Spec):
    cidr: str
    entries: list[VipEntry] = Field(default_factory=list)

    @spec_check
    def _check(self, check: Check) -> None:
        try:
            ipaddress.ip_network(self.cidr, strict=False)
        except ValueError:
            check.add("cidr", f'must be a CIDR such as 240.0.0.0/4, got "{self.cidr}"')
        hosts: set[str] = set()
        vips: set[str] = set()
        for i, e in enumerate(self.entries):
            if e.hostname in hosts:
                check.add(f"entries[{i}].hostname", f'duplicate hostname "{e.hostname}"')
            if e.vip in vips:
                check.add(f"entries[{i}].vip", f"{e.vip} is given to two hostnames")
            hosts.add(e.hostname)
            vips.add(e.vip)


VIP_ALLOCATION = register_type("VipAllocation", VipAllocationSpec, Scope.MESH, plural="vipallocations", owner="cp")
