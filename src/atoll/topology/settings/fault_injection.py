"""MeshFaultInjection settings: the HTTP faults of an inbound, per calling source.

Faults depend on who calls, so this kind is not merged into one value like the others: folding
gets the whole ``from[]`` items (``targetRef`` and ``default``) and the ``rules[]`` items without
``matches`` (every caller), least to most specific, and keeps per item its **source** (the tags a
caller must have: none for ``Mesh``, ``tags`` for ``MeshSubset``, ``kuma.io/service`` for
``MeshService``, both for ``MeshServiceSubset``) and its list of faults. As in Kuma, ``default.http``
is a list that a later (more specific) item replaces as a whole, so a caller gets the faults of the
**last** item whose source it matches; an item without ``http`` changes nothing. Each kept
``FaultRule`` says "callers with ``source`` but with none of ``not_sources`` (the later items'
sources) get ``faults``": the rules are disjoint, exactly one applies to a caller (or none). An item
whose callers all match a later item is dropped. ``rules[]`` items with ``matches`` (callers by
SPIFFE ID) are not enforced here.

A caller is known by the ``x-kuma-tags`` request header (``TAGS_HEADER``) its sidecar adds on
outbound HTTP requests: ``serialize_tags`` writes its tags (every inbound's, values of one key
joined with ``,``) as ``&k1=v1&k2=v2,v3&``; ``source_regex`` is the RE2 pattern matching the headers
of callers having a source's tags. The receiving sidecar removes the header before the application.
Percentages are kept as the decimal text the user wrote (``"2.5"``); durations in seconds;
bandwidth in kbit/s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from atoll.topology.settings.conf import block, blocks, integer, seconds, text
from atoll.topology.tags import SERVICE_TAG, Tags

__all__ = [
    "TAGS_HEADER",
    "Fault",
    "FaultInjectionSettings",
    "FaultRule",
    "serialize_tags",
    "source_regex",
    "source_tags",
]

TAGS_HEADER = "x-kuma-tags"
_KBPS = {"kbps": 1, "Mbps": 1000, "mbps": 1000, "Gbps": 1_000_000, "gbps": 1_000_000}
_BANDWIDTH = re.compile(r"^(\d+)(kbps|Mbps|mbps|Gbps|gbps)$")
_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


@dataclass(frozen=True, slots=True)
class Fault:
    """One entry of ``default.http``: each part is set or ``None`` (percentages as decimal text)."""

    abort_status: int | None = None
    abort_percentage: str | None = None
    delay: float | None = None
    delay_percentage: str | None = None
    bandwidth_kbps: int | None = None
    bandwidth_percentage: str | None = None

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> Fault:
        abort, delay, bandwidth = block(conf, "abort"), block(conf, "delay"), block(conf, "responseBandwidth")
        return cls(
            abort_status=integer(abort, "httpStatus") if abort else None,
            abort_percentage=text(abort, "percentage") if abort else None,
            delay=seconds(delay, "value") if delay else None,
            delay_percentage=text(delay, "percentage") if delay else None,
            bandwidth_kbps=_kbps(text(bandwidth, "limit")) if bandwidth else None,
            bandwidth_percentage=text(bandwidth, "percentage") if bandwidth else None,
        )


def _kbps(limit: str | None) -> int | None:
    m = _BANDWIDTH.match(limit or "")
    return int(m.group(1)) * _KBPS[m.group(2)] if m else None


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Callers with the tags ``source`` (none: every caller) and none of ``not_sources`` get ``faults``."""

    source: Tags
    not_sources: tuple[Tags, ...]
    faults: tuple[Fault, ...]


@dataclass(frozen=True, slots=True)
class FaultInjectionSettings:
    rules: tuple[FaultRule, ...] = ()

    @property
    def by_source(self) -> bool:
        """Whether any rule tells callers apart (then the inbound reads ``TAGS_HEADER``)."""
        return any(r.source or r.not_sources for r in self.rules)

    @classmethod
    def fold(cls, items: Sequence[Mapping[str, Any]]) -> FaultInjectionSettings:
        """The rules of the ``from[]``/``rules[]`` items, least to most specific (see the module doc)."""
        kept = []
        for item in items:
            src, default = _source(item), block(item, "default") or {}
            if src is not None and "http" in default:
                kept.append((src, blocks(default, "http")))
        rules = []
        for i, (src, faults) in enumerate(kept):
            later = [s for s, _ in kept[i + 1 :] if _compatible(s, src)]
            if any(_covers(s, src) for s in later):
                continue  # every caller of this item gets a later item's faults
            rules.append(FaultRule(src, tuple(later), tuple(Fault.from_conf(f) for f in faults)))
        return cls(tuple(rules))


def _source(item: Mapping[str, Any]) -> Tags | None:
    """The caller tags of a ``from[]`` item (``{}`` for Mesh and ``rules[]``), None if not enforced."""
    if "matches" in item:
        return None
    ref = block(item, "targetRef") or {}
    kind = ref.get("kind", "Mesh")
    tags = dict(block(ref, "tags") or {})
    if kind in ("MeshService", "MeshServiceSubset"):
        tags[SERVICE_TAG] = str(ref.get("name"))
    if kind not in ("Mesh", "MeshSubset", "MeshService", "MeshServiceSubset"):
        return None
    return Tags(tags) if kind != "Mesh" else Tags({})


def _covers(general: Mapping[str, str], specific: Mapping[str, str]) -> bool:
    """Every caller with the tags ``specific`` also has ``general``."""
    return all(specific.get(k) == v for k, v in general.items())


def _compatible(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    """Whether one caller could have both tag sets (no key with two different values)."""
    return all(b.get(k, v) == v for k, v in a.items())


def source_tags(tag_sets: Iterable[Mapping[str, str]]) -> dict[str, frozenset[str]]:
    """A proxy's tags (the union of its inbounds' tag sets): the values of each key."""
    out: dict[str, set[str]] = {}
    for tags in tag_sets:
        for k, v in tags.items():
            out.setdefault(k, set()).add(v)
    return {k: frozenset(vs) for k, vs in out.items()}


def serialize_tags(tags: Mapping[str, Iterable[str]]) -> str:
    """The ``TAGS_HEADER`` value of a caller: ``&k1=v1&k2=v2,v3&`` (keys and values sorted)."""
    return "&" + "".join(f"{k}={','.join(sorted(tags[k]))}&" for k in sorted(tags))


def _re2(value: str) -> str:
    return _RE2_SPECIAL.sub(r"\\\1", value)


def source_regex(source: Mapping[str, str]) -> str:
    """RE2 pattern matching the whole ``TAGS_HEADER`` of any caller having every tag of ``source``
    (one of the comma-separated values of its key); keys in sorted order, as serialized."""
    parts = [f"{_re2(k)}=(?:[^&]*,)?{_re2(source[k])}(?:,[^&]*)?&" for k in sorted(source)]
    return ".*&" + "(?:.*&)?".join(parts) + ".*"
