"""The real Kuma 2.14.3 tools (``kumactl``, ``kuma-dp``, ``kuma-cp``) for conformance tests.

They are not in the repo: ``../shared/tools/kuma-2.14.3/`` beside it holds them xz-compressed, with
``SHA256SUMS`` of the unpacked binaries. ``kuma_tool(name)`` unpacks one into a cache outside the
repo (``$XDG_CACHE_HOME/atoll/kuma-2.14.3/``, by default ``~/.cache/atoll/kuma-2.14.3/``) the first
time, checks it against ``SHA256SUMS`` (a cached copy whose sum differs is unpacked again) and
answers its path. The unpack writes to a temporary file and renames it, so concurrent test processes
never run a half-written binary.

``TOOLS_DIR`` is the folder, ``MISSING`` the reason tests skip for when it is absent (only then: CI
has it, and ``tests/ci_skips.py`` turns that skip into a failure there).

From a shell: ``python -m tests.kuma_tools`` unpacks all three and prints the cache directory, e.g.
``export PATH="$(.venv/bin/python -m tests.kuma_tools):$PATH"``.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import sys
import tempfile
from pathlib import Path

from tests.helpers import REPO

VERSION = "2.14.3"
TOOLS_DIR = REPO.parent / "shared" / "tools" / f"kuma-{VERSION}"
MISSING = f"the Kuma {VERSION} tools are not at {TOOLS_DIR} (the repo sits beside shared/)"
NAMES = ("kumactl", "kuma-dp", "kuma-cp")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "atoll" / f"kuma-{VERSION}"


def available() -> bool:
    return TOOLS_DIR.is_dir()


def _sums() -> dict[str, str]:
    sums: dict[str, str] = {}
    for line in (TOOLS_DIR / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name.lstrip("*")] = digest
    return sums


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def kuma_tool(name: str) -> Path:
    """The path of the unpacked, checked tool ``name`` (one of ``NAMES``)."""
    if name not in NAMES:
        raise ValueError(f"unknown Kuma tool {name!r}; known: {', '.join(NAMES)}")
    want = _sums()[name]
    target = cache_dir() / name
    if target.is_file() and _sha256(target) == want:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "wb") as out, lzma.open(TOOLS_DIR / f"{name}.xz") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        got = _sha256(Path(tmp))
        if got != want:
            raise RuntimeError(f"{name} unpacked from {TOOLS_DIR} has SHA-256 {got}, SHA256SUMS says {want}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


if __name__ == "__main__":
    if not available():
        sys.exit(MISSING)
    for tool in NAMES:
        kuma_tool(tool)
    print(cache_dir())
