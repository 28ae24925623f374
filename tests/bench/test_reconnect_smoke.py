"""``bench.reconnect`` at tiny N: a real CP (SQLite store) restarted under simulated proxies."""

from __future__ import annotations

import pytest
from bench.reconnect import report, run

pytestmark = [pytest.mark.bench_smoke, pytest.mark.timeout(180)]


async def test_reconnect_smoke() -> None:
    data = await run([5], workers=1, rounds=1, timeout=60)
    (r,) = data["results"]
    (x,) = r["rounds"]
    assert r["n"] == 5
    assert 0 < x["spawn_to_ready_s"] <= x["all_acked_s"] < 60, x
    assert x["refused"] == 0, x["refused_by_code"]  # only UNAVAILABLE while the CP was down
    assert x["peak_rss_mb"] >= x["rss_after_mb"] > 10
    assert "spawn->all ACKed s" in report(data)
