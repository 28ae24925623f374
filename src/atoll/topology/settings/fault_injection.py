"""MeshFaultInjection settings: the HTTP faults of an inbound, per calling source.

Faults depend on who calls, so this kind is not merged into one value like the others: folding
gets the whole ``from[]`` and ``rules[]`` items (``targetRef``/``matches`` and ``default``), least
to most specific. As in Kuma, ``default.http`` is a list that a later (more specific) item replaces
as a whole, so a caller gets the faults of the **most specific** item it matches; an item without
``http`` changes nothing. Each kept ``FaultRule`` says "callers with ``source`` and ``identity``
but none of the later rules' ``not_sources``/``not_identities`` get ``faults``": the rules are
disjoint, exactly one applies to a caller (or none).

Callers by tags (``from[]``; ``rules[]`` without ``matches`` count as ``Mesh``): per item its
**source**, the tags a caller must have: none for ``Mesh``, ``tags`` for ``MeshSubset``,
``kuma.io/service`` for ``MeshService``, both for ``MeshServiceSubset``. An item whose callers all
match a later item is dropped.

Callers by identity (``rules[].matches[].spiffeID``, Kuma 2.13+): each match is its own rule (a
rule with two matches applies to callers matching either), more specific than any tag rule, and
ordered among themselves as Kuma does: ``Prefix`` before ``Exact``, a shorter prefix before a
longer one, then policy order; the last one a caller matches wins. So a caller matched by some
SPIFFE rule gets that rule's faults and no tag rule's (every tag rule excludes the identities).

A caller's tags come from the ``x-kuma-tags`` request header (``TAGS_HEADER``) its sidecar adds on
outbound HTTP requests: ``serialize_tags`` writes its tags (every inbound's, values of one key
joined with ``,``) as ``&k1=v1&k2=v2,v3&``; ``source_regex`` is the RE2 pattern matching the headers
of callers having a source's tags. A caller's SPIFFE ID comes from its mTLS certificate: the
receiving sidecar's HTTP connection manager writes the certificate's URI SANs into
``x-forwarded-client-cert`` (``CLIENT_CERT_HEADER``: ``...;URI=<san>;URI=<san>``, replacing any
value the caller sent, absent without mTLS) before its filters run; ``identity_regex`` matches a
SPIFFE match against it (any URI SAN, as RBAC principals do). The receiving sidecar removes both
headers before the application. Percentages are kept as the decimal text the user wrote
(``"2.5"``); durations in seconds; bandwidth in kbit/s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from atoll.topology.settings.conf import block, blocks, integer, seconds, text
from atoll.topology.settings.traffic_permission import SpiffeMatch
from atoll.topology.tags import SERVICE_TAG, Tags

__all__ = [
    "CLIENT_CERT_HEADER",
    "TAGS_HEADER",
    "Fault",
    "FaultInjectionSettings",
    "FaultRule",
    "identity_regex",
    "serialize_tags",
    "source_regex",
    "source_tags",
]

TAGS_HEADER = "x-kuma-tags"
CLIENT_CERT_HEADER = "x-forwarded-client-cert"
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
    """Callers with the tags ``source`` (none: every caller) and none of ``not_sources``, with the
    SPIFFE ID ``identity`` (None: any) and none of ``not_identities``, get ``faults``."""

    source: Tags
    not_sources: tuple[Tags, ...]
    faults: tuple[Fault, ...]
    identity: SpiffeMatch | None = None
    not_identities: tuple[SpiffeMatch, ...] = ()


@dataclass(frozen=True, slots=True)
class FaultInjectionSettings:
    rules: tuple[FaultRule, ...] = ()

    @property
    def by_source(self) -> bool:
        """Whether any rule tells callers apart by tags (then the inbound reads ``TAGS_HEADER``)."""
        return any(r.source or r.not_sources for r in self.rules)

    @property
    def by_identity(self) -> bool:
        """Whether any rule tells callers apart by SPIFFE ID (then it reads ``CLIENT_CERT_HEADER``)."""
        return any(r.identity is not None or r.not_identities for r in self.rules)

    @classmethod
    def fold(cls, items: Sequence[Mapping[str, Any]]) -> FaultInjectionSettings:
        """The rules of the ``from[]``/``rules[]`` items, least to most specific (see the module doc)."""
        by_tags: list[tuple[Tags, tuple[Fault, ...]]] = []
        by_identity: list[tuple[SpiffeMatch, tuple[Fault, ...]]] = []
        for item in items:
            default = block(item, "default") or {}
            if "http" not in default:
                continue
            faults = tuple(Fault.from_conf(f) for f in blocks(default, "http"))
            if "matches" in item:
                by_identity.extend((match, faults) for match in _identities(item))
                continue
            src = _source(item)
            if src is not None:
                by_tags.append((src, faults))
        identity_rules = _identity_rules(by_identity)
        claimed = tuple(r.identity for r in identity_rules if r.identity is not None)
        return cls(_tag_rules(by_tags, claimed) + identity_rules)


def _tag_rules(kept: list[tuple[Tags, tuple[Fault, ...]]], claimed: tuple[SpiffeMatch, ...]) -> tuple[FaultRule, ...]:
    rules = []
    for i, (src, faults) in enumerate(kept):
        later = [s for s, _ in kept[i + 1 :] if _compatible(s, src)]
        if any(_covers(s, src) for s in later):
            continue  # every caller of this item gets a later item's faults
        rules.append(FaultRule(src, tuple(later), faults, not_identities=claimed))
    return tuple(rules)


def _identities(item: Mapping[str, Any]) -> list[SpiffeMatch]:
    out: list[SpiffeMatch] = []
    for match in blocks(item, "matches"):
        sid = block(match, "spiffeID")
        if sid is not None:
            out.append(("Prefix" if sid.get("type") == "Prefix" else "Exact", str(sid.get("value"))))
    return out


def _specificity(match: SpiffeMatch) -> tuple[int, int]:
    kind, value = match
    return (2, 0) if kind == "Exact" else (1, len(value))


def _identity_rules(found: list[tuple[SpiffeMatch, tuple[Fault, ...]]]) -> tuple[FaultRule, ...]:
    """Least to most specific (stable: policy order among equals); each rule excludes every later
    identity (a certificate has several URI SANs, so any two matches may meet in one caller)."""
    ordered = sorted(found, key=lambda f: _specificity(f[0]))
    rules = []
    for i, (match, faults) in enumerate(ordered):
        later = tuple(dict.fromkeys(m for m, _ in ordered[i + 1 :]))
        if match in later:
            continue  # the same match later: its faults win for every caller
        rules.append(FaultRule(Tags({}), (), faults, identity=match, not_identities=later))
    return tuple(rules)


def _source(item: Mapping[str, Any]) -> Tags | None:
    """The caller tags of a ``from[]`` item (``{}`` for Mesh and ``rules[]``), None if not enforced."""
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


def identity_regex(match: SpiffeMatch) -> str:
    """RE2 pattern matching the whole ``CLIENT_CERT_HEADER`` of a caller with a URI SAN equal to
    (``Exact``) or starting with (``Prefix``) the match's value."""
    kind, value = match
    tail = "[^;,]*" if kind == "Prefix" else ""
    return f"(?:.*;)?URI={_re2(value)}{tail}(?:;.*)?"
