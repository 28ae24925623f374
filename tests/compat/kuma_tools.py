"""The real Kuma 2.14.3 tools (``kumactl``, ``kuma-dp``, ``kuma-cp``) for conformance tests.

They live xz-compressed in ``../shared/tools/kuma-2.14.3/`` next to the repository (CI has the folder;
its README says how they were built). Each function here unpacks one tool into a cache outside the
repository (``$XDG_CACHE_HOME/atoll/kuma-2.14.3``, else ``~/.cache/atoll/kuma-2.14.3``), once, checks the
unpacked binary against the folder's ``SHA256SUMS`` (a mismatch fails: the cache is rebuilt next time),
and returns its path. When the folder is absent the test skips with that reason (under CI a skip fails,
``tests/ci_skips.py``, as intended).
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
from pathlib import Path

import pytest

VERSION = "2.14.3"
TOOLS = Path(__file__).resolve().parents[2].parent / "shared" / "tools" / f"kuma-{VERSION}"


def _cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "atoll" / f"kuma-{VERSION}"


def _sums() -> dict[str, str]:
    out = {}
    for line in (TOOLS / "SHA256SUMS").read_text().splitlines():
        digest, _, name = line.strip().partition("  ")
        if digest and name:
            out[name.strip()] = digest
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _unpacked(tool: str) -> Path:
    packed = TOOLS / f"{tool}.xz"
    if not packed.is_file():
        pytest.skip(f"the real Kuma {VERSION} tools are absent: no {packed}")
    want = _sums().get(tool)
    assert want, f"{TOOLS / 'SHA256SUMS'} has no sum for {tool}"
    target = _cache() / tool
    if target.is_file() and _sha256(target) == want:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{tool}.{os.getpid()}.partial")
    with lzma.open(packed) as src, partial.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    got = _sha256(partial)
    if got != want:
        partial.unlink()
        raise AssertionError(f"{packed} unpacks to sha256 {got}, SHA256SUMS says {want}")
    partial.chmod(0o755)
    partial.replace(target)  # atomic: a parallel test sees the old file or the whole new one
    return target


def kuma_dp() -> Path:
    """Kuma's data plane agent, ``kuma-dp``."""
    return _unpacked("kuma-dp")


def kumactl() -> Path:
    """Kuma's CLI, ``kumactl``."""
    return _unpacked("kumactl")


def kuma_cp() -> Path:
    """Kuma's control plane, ``kuma-cp`` (the reference to compare answers with)."""
    return _unpacked("kuma-cp")


__all__ = ["TOOLS", "VERSION", "kuma_cp", "kuma_dp", "kumactl"]
