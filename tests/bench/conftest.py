"""Benchmark smoke tests: the benchmarks at tiny N, so that they keep running (``-m bench_smoke``)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bench_smoke: a benchmark at tiny N (seconds), checks it completes sanely")
