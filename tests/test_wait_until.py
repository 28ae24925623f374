"""``wait_until`` / ``await_until`` (tests/helpers.py): a real failure is not a timeout (issue 14, item 14).

A condition raising ``GiveUp`` fails the wait at once; on a timeout the last error the condition
raised is chained, so its traceback shows instead of a bare "timed out".
"""

from __future__ import annotations

import time

import pytest

from tests.helpers import GiveUp, await_until, wait_until


def _gives_up() -> bool:
    raise GiveUp("the process exited")


def _not_yet() -> bool:
    raise AssertionError("status 404")


def test_give_up_fails_the_wait_at_once() -> None:
    start = time.monotonic()
    with pytest.raises(GiveUp, match="the process exited"):
        wait_until(_gives_up, timeout=10)
    assert time.monotonic() - start < 1


async def test_give_up_fails_the_async_wait_at_once() -> None:
    start = time.monotonic()
    with pytest.raises(GiveUp, match="the process exited"):
        await await_until(_gives_up, timeout=10)
    assert time.monotonic() - start < 1


def test_a_timeout_reports_the_last_assertion_with_its_traceback() -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0\.1s waiting for the thing") as e:
        wait_until(_not_yet, timeout=0.1, what="the thing")
    assert isinstance(e.value.__cause__, AssertionError) and str(e.value.__cause__) == "status 404"
    assert e.value.__cause__.__traceback__ is not None


async def test_an_async_timeout_reports_the_last_assertion() -> None:
    with pytest.raises(AssertionError, match="timed out") as e:
        await await_until(_not_yet, timeout=0.1)
    assert isinstance(e.value.__cause__, AssertionError)


def test_a_condition_that_comes_true_returns_its_value() -> None:
    calls = iter([0, 0, 7])
    assert wait_until(lambda: next(calls), timeout=5) == 7
