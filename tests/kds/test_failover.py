"""A zone's KDS client given several global addresses (HA globals): it moves past a dead one, and the
address list is validated."""

from __future__ import annotations

import pytest

from atoll.kds.client import parse_global_addresses
from tests.helpers import await_until, free_port
from tests.kds.conftest import Federation


def test_address_lists_parse_and_name_the_bad_entry() -> None:
    both = parse_global_addresses("grpcs://a.example:5685, grpcs://b.example:5685")
    assert [a.target for a in both] == ["a.example:5685", "b.example:5685"]
    assert len(parse_global_addresses("grpc://127.0.0.1:1")) == 1
    for bad, message in (
        ("", "at least one"),
        ("grpcs://a:1,,grpcs://b:2", "empty address"),
        ("grpcs://a:1,b", "grpcs://"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_global_addresses(bad)


async def test_zone_moves_to_the_next_global_when_one_does_not_answer(
    federation: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    await federation.start_global()
    dead = free_port()
    zone = await federation.start_zone("zone-1", address=f"grpc://127.0.0.1:{dead},grpc://127.0.0.1:{federation.port}")
    await await_until(lambda: zone.client.connected, timeout=20, what="connected through the second address")
    assert zone.client.address.port == federation.port
    assert f"moving to global at grpc://127.0.0.1:{federation.port}" in caplog.text
