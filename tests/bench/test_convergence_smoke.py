"""``bench.convergence`` at tiny N: a real CP, a real Envoy, simulated proxies, and the floor, both modes.

Asserts the run completed with sane numbers: every change converged, every client ACKed (no stream
errors, no NACKs), the real Envoy holds the last change, and the JSON and table were written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from bench.common import write_results
from bench.convergence import Config, report, run

pytestmark = [pytest.mark.bench_smoke, pytest.mark.timeout(240)]


async def test_convergence_smoke(tmp_path: Path) -> None:
    cfg = Config(
        ns=[4],
        modes=["sotw", "delta"],
        changes=2,
        warmup=2,
        workers=1,
        services=5,
        outbounds=3,
        envoys=1,
        peers=["floor"],
        write=False,
        quiet=0.15,
        timeout=30,
    )
    data = await run(cfg)
    assert data["errors"] == {}
    assert {(r["server"], r["mode"]) for r in data["results"]} == {
        ("ours", "sotw"),
        ("floor", "sotw"),
        ("ours", "delta"),
        ("floor", "delta"),
    }
    for r in data["results"]:
        assert r["n"] == 4 and r["stream_errors"] == 0 and r["nacks"] == 0, r
        for kind in ("endpoint", "policy"):
            s = r[kind]
            assert s["changes"] == 2 and s["converged"] == 2, (r["server"], kind, s)
            assert s["acks_per_change"] >= 4, s  # every client ACKed at least once per change
            assert 0 < s["p50_ms_from_sent"] <= s["p99_ms_from_sent"] < 30_000, s
            assert s["server_cpu_ms_per_change"] >= 0 and not math.isnan(s["p99_ms"])
        if r["server"] == "ours":
            assert r["envoys_verified"] == {"endpoint": True, "policy": True}
            assert r["rss_connected_mb"] > 10
    assert len(data["ratios"]) == 4 and all(x["p50_over_floor"] > 0 for x in data["ratios"])
    text = report(data)
    assert "p50/floor" in text and "ours" in text
    path = write_results("convergence", data, tmp_path)
    assert json.loads(path.read_text())["results"] and "convergence" in json.loads(
        (tmp_path / "latest.json").read_text()
    )
