"""``bench.crosszone`` at tiny N: global + two zone CPs and four real Envoys, 3 runs of each change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.common import write_results
from bench.crosszone import Config, report, run

pytestmark = [pytest.mark.bench_smoke, pytest.mark.envoy, pytest.mark.timeout(300)]


def test_crosszone_smoke(tmp_path: Path) -> None:
    data = run(Config(runs=3, warmup=1, coalesce=[None], timeout=20))
    (res,) = data["results"]
    runs = res["runs"]
    kinds = [r["kind"] for r in runs]
    assert kinds.count("register") == kinds.count("deregister") == kinds.count("policy") == 3, kinds
    for r in runs:
        assert 0 < r["ms"] < 20_000, r  # every run was observed (a miss raises), in a sane time
        assert 0 < r["write_ms"] and r["from_sent_ms"] >= r["ms"], r
        hops = r["hops"]
        assert all(v is not None for v in hops.values()), r
        if r["kind"] == "policy":
            # stored at global, then in each zone, then in that zone's Envoy; done when both had it
            for z in ("zone-1", "zone-2"):
                assert hops["global store"] <= hops[f"{z} store"] <= hops[f"{z} envoy"] <= r["ms"], r
            assert r["ms"] == max(hops["zone-1 envoy"], hops["zone-2 envoy"])
        else:
            assert r["weight"] == (2 if r["kind"] == "register" else 1)
            assert 0 < hops["zone-2 ingress published"] <= hops["global store"] <= hops["zone-1 store"], r
            assert hops["zone-1 store"] <= hops["zone-1 envoy"] == r["ms"], r
    for kind, s in res["summary"].items():
        t = s["total"]
        assert t["n"] == 3 and 0 < t["min"] <= t["p50"] <= t["p99"] <= t["max"], (kind, t)
    text = report(data)
    assert "(b) policy at global -> both Envoys" in text and "<= 250" in text
    path = write_results("crosszone", data, tmp_path)
    assert json.loads(path.read_text())["results"][0]["coalesce"] == res["coalesce"]
    assert "crosszone" in json.loads((tmp_path / "latest.json").read_text())
