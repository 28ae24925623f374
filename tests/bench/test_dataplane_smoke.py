"""``bench.dataplane`` briefly, every path: direct, the two-Envoy floor, two sidecars plaintext and mTLS, cross-zone
(global + two zone CPs, zone-2's ingress), with the Go load generator at 200 req/s for half a second.

Asserts that every scheduled request of every path was answered 200 with a 1 KB body, that the
numbers are consistent (service time <= latency, percentiles ordered, added = path - direct), that
mTLS was really in use where it should be and not elsewhere, and that the table renders."""

from __future__ import annotations

import pytest
from bench.dataplane import BODY, PATHS, report, run

pytestmark = [
    pytest.mark.bench_smoke,
    pytest.mark.envoy,
    pytest.mark.timeout(180),
]


def test_dataplane_smoke() -> None:
    data = run(rate=200, seconds=0.5, warmup=0.1, rounds=1, paths=list(PATHS))
    assert list(data["results"]) == ["direct", "two-envoys-floor", "two-sidecars", "two-sidecars-mtls", "cross-zone"]
    for name, r in data["results"].items():
        # every request answered 200 with 1 KB (the generator checks status and body size of each)
        assert r["requests"] == 100 and r["ok"] == 100 and r["errors"] == 0, (name, r)
        assert r["body_bytes"] == 100 * BODY, (name, r)
        assert 0 < r["service_p50_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["p99.9_ms"], (name, r)
        assert r["conns_max"] >= 1 and r["lag_p50_ms"] < 1, (name, r)
        assert set(r["cpu_us_per_request"]) == {"generator", *r["envoys"]}, (name, r)
    roles = {name: list(r["envoys"]) for name, r in data["results"].items()}
    assert roles == {
        "direct": ["backend"],
        "two-envoys-floor": ["hop-1", "hop-2", "backend"],
        "two-sidecars": ["web", "backend-sc", "backend"],
        "two-sidecars-mtls": ["web", "backend-sc", "backend"],
        "cross-zone": ["web", "ingress", "backend-sc", "backend"],
    }
    tls = {
        name: {role: st["ssl_handshakes"] for role, st in r["envoys"].items()} for name, r in data["results"].items()
    }
    assert tls["two-sidecars"] == {"web": 0, "backend-sc": 0, "backend": 0}, tls
    assert tls["two-envoys-floor"] == {"hop-1": 0, "hop-2": 0, "backend": 0}, tls
    for name in ("two-sidecars-mtls", "cross-zone"):
        assert tls[name]["web"] > 0 and tls[name]["backend-sc"] > 0 and tls[name]["backend"] == 0, tls
    assert set(data["added"]) == set(PATHS) - {"direct"}
    for name, add in data["added"].items():
        assert add["p90_ms"] == pytest.approx(data["results"][name]["p90_ms"] - data["results"]["direct"]["p90_ms"])
    text = report(data)
    assert "added p90 (<=0.25)" in text and "cross-zone" in text
