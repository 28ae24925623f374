"""``bench.dataplane`` briefly: a 1 KB Envoy backend, direct and through two real sidecars."""

from __future__ import annotations

import pytest
from bench.dataplane import BODY, report, run

pytestmark = [pytest.mark.bench_smoke, pytest.mark.envoy, pytest.mark.timeout(180)]


def test_dataplane_smoke() -> None:
    data = run(rate=200, seconds=0.5, warmup=0.1, rounds=1, paths=["direct", "two-sidecars"])
    for name in ("direct", "two-sidecars"):
        r = data["results"][name]
        assert r["requests"] == 100 and r["errors"] == 0, r  # every request answered 200 with 1 KB
        assert 0 < r["service_p50_ms"] <= r["p50_ms"] <= r["p99_ms"], r
    assert set(data["added"]) == {"two-sidecars"}
    assert data["config"]["body_bytes"] == BODY
    assert "added p90" in report(data)
