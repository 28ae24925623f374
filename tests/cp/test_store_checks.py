"""A control plane never starts empty or damaged without a word (issue 14, item 7).

A data dir that was in use and now holds a missing or 0-byte database, a database behind the
revision the CP last saw, or a damaged file is refused (``--allow-empty`` accepts the first two);
what was recovered is logged, resources per type.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from atoll.cp import store_checks
from atoll.cp.config import CpConfig
from atoll.cp.run import open_configured_store
from atoll.errors import AtollError, ConfigError
from atoll.resources import decode
from atoll.store import SqliteStore


async def _run_once(config: CpConfig, meshes: range) -> None:
    """A CP's life: open, write ``meshes``, stop cleanly."""
    store = await open_configured_store(config)
    for i in meshes:
        await store.create(decode({"type": "Mesh", "name": f"m{i}"}))
    await store_checks.record_clean_stop(store, config.store_path)
    await store.close()


def _damage(data_dir: Path, db: Path, how: str) -> None:
    for wal in data_dir.glob("atoll.db-*"):
        wal.unlink()
    if how == "zeroed":
        db.write_bytes(b"")
    else:
        db.unlink()


def _copy_database(src: Path, dst: Path) -> None:
    """Copy the database files of ``src`` (not its marker) into ``dst``."""
    dst.mkdir(exist_ok=True)
    for f in src.glob("atoll.db*"):
        if not f.name.endswith(store_checks.MARKER_SUFFIX):
            shutil.copy(f, dst / f.name)


@pytest.mark.parametrize("damage", ["zeroed", "deleted"])
async def test_a_data_dir_in_use_without_its_database_is_refused(tmp_path: Path, damage: str) -> None:
    config = CpConfig(data_dir=tmp_path)
    await _run_once(config, range(3))
    _damage(tmp_path, config.store_path, damage)
    with pytest.raises(AtollError, match="allow-empty") as e:
        await open_configured_store(config)
    assert "in use" in str(e.value) and str(config.store_path) in str(e.value)
    assert not config.store_path.exists() or config.store_path.stat().st_size == 0  # left for a restore
    store = await open_configured_store(CpConfig(data_dir=tmp_path, allow_empty=True))
    await store.close()


async def test_a_first_start_in_an_empty_data_dir_is_fine(tmp_path: Path) -> None:
    config = CpConfig(data_dir=tmp_path / "new")
    await _run_once(config, range(0))
    assert store_checks.marker_path(config.store_path).is_file()


async def test_a_database_behind_the_last_revision_seen_is_refused(tmp_path: Path) -> None:
    """Acknowledged writes missing (as after a WAL truncated to half) are not served silently."""
    config = CpConfig(data_dir=tmp_path)
    await _run_once(config, range(10))
    _copy_database(tmp_path, tmp_path / "old")
    await _run_once(config, range(10, 30))
    _copy_database(tmp_path / "old", tmp_path)  # the database loses its last 20 meshes; the marker stays
    with pytest.raises(AtollError, match=r"revision 10, but this CP saw revision 30"):
        await open_configured_store(config)
    store = await open_configured_store(CpConfig(data_dir=tmp_path, allow_empty=True))
    await store.close()


async def test_start_logs_what_was_recovered(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = CpConfig(data_dir=tmp_path)
    await _run_once(config, range(2))
    caplog.set_level(logging.INFO, logger="atoll.cp.store_checks")
    store = await open_configured_store(config)
    await store.close()
    assert "store opened: 2 resources (Mesh: 2) at revision 2" in caplog.messages


async def test_a_damaged_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "atoll.db"
    store = await SqliteStore.open(path)
    for i in range(300):
        await store.create(decode({"type": "Mesh", "name": f"mesh-{i:04d}", "labels": {"pad": "x" * 200}}))
    await store.close()
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    for n in range(5, 8):  # garbage in the cells at the end of some b-tree pages
        data[(n + 1) * page - 300 : (n + 1) * page] = b"\xa5" * 300
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="integrity_check"):
        await SqliteStore.open(path)
