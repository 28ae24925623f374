"""``bench.kds_scale`` at tiny N: global + zone CP processes, 200 Dataplanes synced, 3 one-resource deltas."""

from __future__ import annotations

import pytest
from bench.kds_scale import Config, report, run

pytestmark = [pytest.mark.bench_smoke, pytest.mark.timeout(180)]


def test_kds_scale_smoke() -> None:
    data = run(Config(dataplanes=200, changes=3, timeout=60))
    r = data["result"]
    s, d = r["sync"], r["delta"]
    assert r["n"] == 200 and s["global_total"] == 200
    # Times from the zone spawn are ordered: the stream opens, then global holds them all.
    assert 0 < s["spawn_to_stream_open_s"] < s["spawn_to_synced_s"] < 60, s
    assert s["stream_open_to_synced_s"] > 0
    assert s["zone_cpu_to_ready_s"] > 0 and s["zone_cpu_s"] > 0 and s["global_cpu_s"] > 0, s
    assert s["global_rss_after_mb"] > 20 and s["zone_rss_after_mb"] > 20, s
    assert s["global_peak_during_mb"] >= s["global_rss_before_mb"]
    assert d["changes"] == 3 and len(d["times_s"]) == 3
    assert 0 < d["p50_s"] <= d["p99_s"] < 10, d
    assert d["p50_sent_s"] >= d["p50_s"]
    text = report(data)
    assert "open->all s" in text and "p99 ms" in text and "targets" in text
