"""Fixtures of the security tests: each store-backed test runs against the memory store and a real
SQLite file; a settable clock; a mesh with the builtin CA enabled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from atoll.resources import Resource, decode
from atoll.store import Store, open_store

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s = await open_store(request.param, path=tmp_path / "atoll.db" if request.param == "sqlite" else None)
    yield s
    await s.close()


MTLS_MESH = """\
type: Mesh
name: {name}
mtls:
  enabledBackend: ca-1
  backends:
    - name: ca-1
      type: builtin
      dpCert:
        rotation:
          expiration: 2h
      conf:
        caCert:
          RSAbits: {bits}
          expiration: 1y
"""


def mtls_mesh(name: str = "default", bits: int = 2048) -> Resource[Any]:
    return decode(yaml.safe_load(MTLS_MESH.format(name=name, bits=bits)))


def plain_mesh(name: str = "default") -> Resource[Any]:
    return decode({"type": "Mesh", "name": name})


def dataplane(name: str = "web-1", mesh: str = "default", service: str = "web", **tags: str) -> Resource[Any]:
    return decode(
        {
            "type": "Dataplane",
            "mesh": mesh,
            "name": name,
            "networking": {
                "address": "127.0.0.1",
                "inbound": [{"port": 8080, "servicePort": 8081, "tags": {"kuma.io/service": service, **tags}}],
            },
        }
    )
