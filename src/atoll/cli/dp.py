"""`atoll dp ...`: the data plane agent commands (placeholder, filled by the dp work)."""

from __future__ import annotations

import click


@click.group(name="dp")
def dp() -> None:
    """Run a data plane proxy (Envoy sidecar, zone ingress or zone egress) managed by a zone CP."""
