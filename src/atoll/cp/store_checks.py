"""Start-up checks of a control plane's store: never start empty or damaged without a word.

A data dir that was in use and now holds no database means lost data (a deleted or zeroed
``atoll.db``), not a first start. So the first start writes a marker beside the database
(``<data_dir>/atoll.db.in-use``, JSON ``{"revision": N, "written": time}``), rewritten with the
store's revision after every start's checks and at every clean stop. At start:

- ``check_before_open``: the marker exists but ``atoll.db`` is missing or 0 bytes -> refuse
  (``AtollError``) unless ``allow_empty``;
- the SQLite store itself runs ``PRAGMA integrity_check`` when it opens and refuses a damaged file
  (``atoll.store.sqlite``);
- ``check_after_open``: the store's revision is below the marker's (writes this CP saw committed
  are gone, e.g. a truncated WAL) -> refuse unless ``allow_empty``; then it logs what was recovered
  (resources per type and the revision) and rewrites the marker.

A memory store has nothing to check. A PostgreSQL store gets the count log only: its durability is
the database server's job, and several CPs share it.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from atoll.errors import AtollError
from atoll.resources.types import all_types
from atoll.store.protocol import ListFilter, Store
from atoll.store.sqlite import SqliteStore

log = logging.getLogger(__name__)

MARKER_SUFFIX = ".in-use"
ALLOW = "start with --allow-empty (ATOLL_ALLOW_EMPTY=true) to accept that and start anyway"


def marker_path(db: Path) -> Path:
    """The in-use marker of the database file ``db``."""
    return db.with_name(db.name + MARKER_SUFFIX)


def check_before_open(db: Path, *, allow_empty: bool) -> None:
    """Refuse a data dir that was in use and now has no (or a 0-byte) database."""
    marker = marker_path(db)
    if not marker.exists():
        return
    state = "missing" if not db.exists() else "empty (0 bytes)" if db.stat().st_size == 0 else None
    if state is None:
        return
    if allow_empty:
        log.warning("database %s is %s though %s says it was in use; starting empty (allow_empty)", db, state, marker)
        return
    raise AtollError(
        f"database {db} is {state}, but {marker} says this data dir was in use: its resources are lost"
        f" unless you restore the database from a backup; {ALLOW}"
    )


async def check_after_open(store: Store, db: Path | None, *, allow_empty: bool) -> dict[str, int]:
    """Refuse a database behind the marker's revision; log and return the resources per type."""
    counts = {t.name: (await store.list(ListFilter(type=t.name), limit=0)).total for t in all_types()}
    found = {k: v for k, v in counts.items() if v}
    revision = await store.revision() if isinstance(store, SqliteStore) else None
    if db is not None and revision is not None:
        seen = _marker_revision(marker_path(db))
        if seen is not None and revision < seen:
            if not allow_empty:
                raise AtollError(
                    f"database {db} is at revision {revision}, but this CP saw revision {seen} committed:"
                    f" acknowledged writes are lost (a truncated or deleted WAL file?); restore the database"
                    f" from a backup, or {ALLOW}"
                )
            log.warning("database %s is at revision %d, behind %d; starting anyway (allow_empty)", db, revision, seen)
        write_marker(db, revision)
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(found.items())) or "none"
    log.info(
        "store opened: %d resources (%s)%s",
        sum(found.values()),
        summary,
        "" if revision is None else f" at revision {revision}",
        extra={"resources": found, "revision": revision},
    )
    return found


async def record_clean_stop(store: Store, db: Path | None) -> None:
    """Rewrite the marker with the revision of a store about to be closed cleanly."""
    if db is not None and isinstance(store, SqliteStore) and not store.closed:
        write_marker(db, await store.revision())


def write_marker(db: Path, revision: int) -> None:
    """Write the marker atomically (a temp file renamed over it)."""
    marker = marker_path(db)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps({"revision": revision, "written": datetime.now(UTC).isoformat()}) + "\n")
    os.replace(tmp, marker)


def _marker_revision(marker: Path) -> int | None:
    """The revision a marker records; ``None`` for no marker or an unreadable one (logged)."""
    try:
        data = json.loads(marker.read_text())
        return int(data["revision"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("ignoring unreadable store marker %s: %s", marker, e)
        return None
