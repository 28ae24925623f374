"""``atoll.addresses.is_loopback_host``: who counts as a loopback client, for the API's admin check."""

from __future__ import annotations

import pytest

from atoll.addresses import is_loopback_host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "::ffff:127.9.9.9"])
def test_loopback_addresses_including_ipv4_mapped(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host", ["10.0.0.1", "192.0.2.7", "::ffff:10.0.0.1", "2001:db8::1", "::", "0.0.0.0", "testclient", "", None]
)
def test_everything_else_is_remote(host: str | None) -> None:
    assert not is_loopback_host(host)
