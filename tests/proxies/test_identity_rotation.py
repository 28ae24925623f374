"""A proxy's certificate rotates at half its lifetime, not later (issue 14, item 14).

Every e2e test passes with rotation at 90 % or 100 % of the lifetime; this pins the point: with a
10 h lifetime the book reuses the certificate until 5 h, then reports the proxy due and issues anew.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from atoll.pki.certificates import certificate_facts, generate_ca
from atoll.proxies.identities import IdentityBook
from atoll.resources import Resource, decode

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NODE = "default.web-1"

MESH = decode(
    {
        "type": "Mesh",
        "name": "default",
        "mtls": {
            "enabledBackend": "ca-1",
            "backends": [{"name": "ca-1", "type": "builtin", "dpCert": {"rotation": {"expiration": "10h"}}}],
        },
    }
)


def _dataplane() -> Resource[Any]:
    return decode(
        {
            "type": "Dataplane",
            "mesh": "default",
            "name": "web-1",
            "networking": {"address": "10.0.0.1", "inbound": [{"port": 8080, "tags": {"kuma.io/service": "web"}}]},
        }
    )


def test_a_certificate_rotates_at_half_its_lifetime() -> None:
    now = [T0]
    book = IdentityBook(zone="z1", clock=lambda: now[0])
    book.set_ca("default", generate_ca("default", valid_for=timedelta(days=365), now=T0 - timedelta(days=1)))
    dp = _dataplane()
    first = book.identity_for(NODE, MESH, dp)
    assert first is not None
    _, not_before, not_after = certificate_facts(first.cert_pem)
    assert not_after - not_before == timedelta(hours=10)
    assert book.seconds_until_due() == timedelta(hours=5).total_seconds()

    now[0] = T0 + timedelta(hours=5) - timedelta(seconds=1)
    assert book.due() == []
    assert book.identity_for(NODE, MESH, dp) is first  # reused before half its lifetime

    now[0] = T0 + timedelta(hours=5)
    assert book.due() == [NODE]
    second = book.identity_for(NODE, MESH, dp)
    assert second is not None and second.cert_pem != first.cert_pem
    _, not_before, _ = certificate_facts(second.cert_pem)
    assert not_before == now[0]
    assert book.due() == []
    assert book.seconds_until_due() == timedelta(hours=5).total_seconds()


def test_the_insight_names_the_certificate_held() -> None:
    """What the proxies page shows: the serial and expiry of the certificate the proxy holds now."""
    now = [T0]
    book = IdentityBook(zone="z1", clock=lambda: now[0])
    book.set_ca("default", generate_ca("default", valid_for=timedelta(days=365), now=T0 - timedelta(days=1)))
    assert book.certificate(NODE) is None
    first = book.identity_for(NODE, MESH, _dataplane())
    assert first is not None
    serial, _, not_after = certificate_facts(first.cert_pem)
    assert book.certificate(NODE) == {
        "certificateSerial": f"{serial:x}",
        "certificateExpirationTime": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lastCertificateRegeneration": "2026-01-01T00:00:00Z",
        "certificateRegenerations": 1,
    }
    now[0] = T0 + timedelta(hours=5)
    book.identity_for(NODE, MESH, _dataplane())
    held = book.certificate(NODE)
    assert held is not None and held["certificateRegenerations"] == 2
    assert held["lastCertificateRegeneration"] == "2026-01-01T05:00:00Z"
    book.forget(NODE)
    assert book.certificate(NODE) is None
