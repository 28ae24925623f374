"""Test data and watch helpers shared by the store tests: real Mesh/Dataplane resources."""

from __future__ import annotations

import asyncio
from typing import Any

import atoll.resources
from atoll.resources import Resource
from atoll.store import ChangeEvent, Subscription


def mesh(name: str, **labels: str) -> Resource[Any]:
    return atoll.resources.decode({"type": "Mesh", "name": name, "labels": labels})


def dataplane(name: str, mesh: str = "default", service: str = "web", port: int = 8080, **labels: str) -> Resource[Any]:
    return atoll.resources.decode(
        {
            "type": "Dataplane",
            "name": name,
            "mesh": mesh,
            "labels": labels,
            "networking": {
                "address": "10.0.0.1",
                "inbound": [{"port": port, "tags": {"kuma.io/service": service, "kuma.io/protocol": "http"}}],
            },
        }
    )


async def next_events(sub: Subscription, n: int, within: float = 10.0) -> list[ChangeEvent]:
    """The next ``n`` events of ``sub``, failing after ``within`` seconds."""

    async def take() -> list[ChangeEvent]:
        out = []
        async for ev in sub:
            out.append(ev)
            if len(out) == n:
                break
        return out

    return await asyncio.wait_for(take(), within)


def summary(events: list[ChangeEvent]) -> list[tuple[str, str, str, int]]:
    return [(e.kind.value, e.resource.type, e.resource.name, e.resource.meta.version) for e in events]
