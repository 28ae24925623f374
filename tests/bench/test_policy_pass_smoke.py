"""``bench.policy_pass`` at tiny N: the reconciler alone, a few policy and endpoint changes timed."""

from __future__ import annotations

import asyncio

import pytest
from bench.policy_pass import run

pytestmark = [pytest.mark.bench_smoke, pytest.mark.timeout(180)]


def test_policy_pass_smoke() -> None:
    out = asyncio.run(run(n=30, services=5, outbounds=3, changes=3, warmup=1, profile=None))
    assert out["n"] == 30
    for kind in ("endpoint", "policy"):
        r = out[kind]
        assert 0 < r["cpu_ms_p50"] < 10_000, r
        assert r["cpu_ms_mean"] > 0
    # A mesh-wide policy regenerates every proxy; the moving svc-0 endpoint reaches them all too.
    assert out["policy"]["generated_per_pass"] == 30
    assert out["endpoint"]["generated_per_pass"] == 30
