"""Under CI a missing precondition is a failure, not a skip (issue 14, item 14).

Tests skip when what they need is not on the machine: a PostgreSQL server, root and network
namespaces, the shared compatibility corpus (``../shared/compat``). On a laptop that is fine; in CI,
which is meant to have all of them, a skip would hide ~230 tests behind a green run. So when the
environment variable ``CI`` is set (to anything but ``""``, ``0`` or ``false``), every skipped test
and every skipped module is reported as failed, with the skip's reason. Every skip of this suite is
such a precondition; a test that may legitimately skip in CI says so with ``@pytest.mark.ci_may_skip``.

Loaded by ``tests/conftest.py`` (``pytest_plugins``).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

MARK = "ci_may_skip"


def in_ci(env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    return env.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARK}: this test may skip under CI (not a missing precondition)")


def _reason(longrepr: Any) -> str:
    text = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


def _fail(report: pytest.TestReport | pytest.CollectReport) -> None:
    report.outcome = "failed"
    report.longrepr = f"CI is set, so a missing precondition fails instead of skipping: {_reason(report.longrepr)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and in_ci() and item.get_closest_marker(MARK) is None:
        _fail(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()
    if report.skipped and in_ci():
        _fail(report)
