"""One control plane per data directory: an OS lock on ``<data_dir>/cp.lock``.

Two control planes started without ``--data-dir`` on one host would otherwise share
``~/.local/share/atoll`` (its SQLite database, admin token and generated certificates) without a word.
``lock_data_dir(data_dir)`` takes an exclusive, non-blocking ``flock`` on ``cp.lock`` and writes the
holder's pid into it; the lock is released by ``DataDirLock.release`` or, whatever happens, by the
operating system when the process ends, so a CP that was killed never leaves a stale lock behind (the
file stays, its lock does not). A second CP gets ``AtollError`` naming the holder's pid (as written in
the file) and how to choose another directory.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from atoll.errors import AtollError

LOCK_NAME = "cp.lock"


@dataclass(slots=True)
class DataDirLock:
    """A held lock: the open lock file. ``release`` unlocks and closes it (idempotent)."""

    path: Path
    fd: int | None

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None


def lock_data_dir(data_dir: Path) -> DataDirLock:
    """Lock ``data_dir`` for this process (created if missing); ``AtollError`` if another live process
    holds it or the directory cannot be used."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AtollError(f"data_dir: cannot create {data_dir}: {e.strerror or e}") from None
    path = data_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise AtollError(f"data_dir: cannot open the lock file {path}: {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _read_pid(fd)
        os.close(fd)
        who = f"process {holder}" if holder else "another process"
        raise AtollError(
            f"data dir {data_dir} is in use by another control plane ({who} holds {path});"
            " stop that one, or give this one its own directory with --data-dir DIR (ATOLL_DATA_DIR)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return DataDirLock(path, fd)


def _read_pid(fd: int) -> str:
    """The pid the holder wrote into the lock file, or ``""``."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""
