"""The reliability suite's fixtures and its report.

A throw-away PostgreSQL server (the store suite's ``pg_server``, one per session) with a database per
role. The tests record what they inject and what they measure in ``FIGURES``; at the end of the run
``pytest_terminal_summary`` prints them: faults injected, failed requests per transition (and after
reconvergence), leader handover times, writes acknowledged and lost, the peak RSS of the CPs.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.store.conftest import PgServer, _admin, pg_server  # noqa: F401  (the session's PostgreSQL)

FIGURES: dict[str, Any] = {"faults": [], "transitions": [], "writes_acked": 0, "writes_lost": 0, "rss_peak_kib": 0}


def new_database(server: PgServer, name: str) -> str:
    _admin(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _admin(server, f"CREATE DATABASE {name}")
    return server.dsn(name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES["faults"]:
        return
    w = terminalreporter
    w.section("reliability figures")
    w.line(f"faults injected: {len(FIGURES['faults'])} ({', '.join(FIGURES['faults'])})")
    for t in FIGURES["transitions"]:
        handover = f"new leader in {t['handover_s']:.2f}s" if t.get("handover_s") is not None else "no handover"
        traffic = (
            f"failed requests {t['failed']} of {t['requests']} during the transition, "
            f"{t['failed_after']} of {t['requests_after']} after reconvergence; "
            if t["requests"] or t["requests_after"]
            else ""
        )
        w.line(f"  {t['name']}: {traffic}{handover}")
    w.line(f"writes acknowledged: {FIGURES['writes_acked']}, lost: {FIGURES['writes_lost']}")
    if FIGURES["rss_peak_kib"]:
        w.line(f"RSS peak of a control plane: {FIGURES['rss_peak_kib'] / 1024:.0f} MiB")
