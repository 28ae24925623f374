"""The interim admin check: loopback clients (IPv4 or IPv6) are admins, anyone else is not."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from atoll.api.deps import is_loopback_admin


def request_from(client: tuple[str, int] | None) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [], "client": client})


@pytest.mark.parametrize(
    ("client", "admin"),
    [
        (("127.0.0.1", 5000), True),
        (("127.3.4.5", 5000), True),
        (("::1", 5000), True),
        (("10.0.0.1", 5000), False),
        (("192.168.1.20", 5000), False),
        (("fe80::1", 5000), False),
        (("not-an-address", 5000), False),
        (None, False),
    ],
)
def test_loopback_clients_are_admins(client: tuple[str, int] | None, admin: bool) -> None:
    assert is_loopback_admin(request_from(client)) is admin
