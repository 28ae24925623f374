"""Numbered SQL migrations: ``migrations/<backend>/NNNN_name.sql``, applied in order, once each.

``load(backend)`` reads the files shipped in the package and checks that versions start at 1 and
have no gaps or duplicates. The backends apply the pending ones inside one transaction that also
records each in ``schema_migrations`` (version, name, applied_at), so a half-applied migration
never sticks and re-opening a store applies nothing twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load(backend: str) -> list[Migration]:
    """The migrations shipped for ``backend`` (``sqlite`` or ``postgres``), in order."""
    folder = resources.files("atoll.store").joinpath("migrations").joinpath(backend)
    return from_files(folder.iterdir())


def from_files(files: Iterable[Traversable]) -> list[Migration]:
    """Parse and check migration files (other files are ignored)."""
    found: dict[int, Migration] = {}
    for f in files:
        m = _FILE.match(f.name)
        if m is None or not f.is_file():
            continue
        version = int(m.group(1))
        if version in found:
            raise RuntimeError(f"two migrations numbered {version:04d}: {found[version].name} and {m.group(2)}")
        found[version] = Migration(version, m.group(2), f.read_text(encoding="utf-8"))
    ordered = [found[v] for v in sorted(found)]
    for i, mig in enumerate(ordered, start=1):
        if mig.version != i:
            raise RuntimeError(f"migration {i:04d} is missing (found {mig.version:04d}_{mig.name})")
    return ordered
