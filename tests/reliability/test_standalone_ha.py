"""Two standalone CP instances on one PostgreSQL: the leader creates mesh CAs (exactly one CA per mesh),
after the leader is killed the other creates the CA of a mesh made afterwards, and either instance's
``GET /control-planes`` lists both with one leader."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.mesh import CpProcess, http_json
from tests.e2e.multizone import mtls_mesh
from tests.helpers import wait_until
from tests.reliability.conftest import FIGURES, new_database
from tests.store.conftest import PgServer

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]


@pytest.fixture
def pair(pg_server: PgServer, tmp_path: Path) -> Iterator[list[CpProcess]]:
    dsn = new_database(pg_server, "atoll_ha_standalone")
    cps: list[CpProcess] = []
    try:
        for n in (1, 2):
            cps.append(CpProcess(tmp_path, name=f"cp-{n}", store="postgres", env={"ATOLL_STORE_DSN": dsn}).start())
        yield cps
    finally:
        for cp in cps:
            cp.stop()


def _ca_secrets(cp: CpProcess, mesh: str) -> list[str]:
    status, body = http_json("GET", cp.url + f"/meshes/{mesh}/secrets")
    return sorted(i["name"] for i in body["items"] if i["name"].startswith("ca-builtin")) if status == 200 else []


def _leader_port(cp: CpProcess) -> int | None:
    body = cp.get("/control-planes")
    leader = next((i for i in body["items"] if i["id"] == body["leader"]), None)
    return int(str(leader["address"]).rsplit(":", 1)[1]) if leader else None


def test_the_leader_creates_each_mesh_ca_once_and_a_successor_takes_over(pair: list[CpProcess]) -> None:
    first, second = pair
    wait_until(lambda: _leader_port(first) is not None and _leader_port(first) == _leader_port(second), timeout=20)
    wait_until(lambda: first.get("/control-planes")["total"] == 2, timeout=10, what="each lists both")
    first.put(mtls_mesh("one"))
    wait_until(lambda: len(_ca_secrets(second, "one")) == 2, timeout=30, what="mesh one's CA (key and cert)")
    assert _ca_secrets(first, "one") == ["ca-builtin-cert-ca-1", "ca-builtin-key-ca-1"]

    leader = next(cp for cp in pair if cp.api_port == _leader_port(first))
    survivor = second if leader is first else first
    assert leader.proc is not None
    os.killpg(leader.proc.pid, signal.SIGKILL)
    leader.proc.wait(10)
    leader.proc = None
    FIGURES["faults"].append("kill -9 standalone leader")
    wait_until(lambda: _leader_port(survivor) == survivor.api_port, timeout=10, what="the survivor leads")
    survivor.put(mtls_mesh("two"))
    wait_until(lambda: len(_ca_secrets(survivor, "two")) == 2, timeout=30, what="mesh two's CA by the new leader")
