"""Policy JSON as folding reads it: frozen (``Conf``), merged (RFC 7396), and read into typed values.

Policies reach topology as their JSON form (``Resource.spec_dict``: camelCase, only the fields the
user set, never ``null``). ``freeze`` makes that data immutable and hashable (``Conf`` for objects,
tuples for arrays), so shared policy items cannot change under the memo that keys on them.
``merge_patch`` is RFC 7396 JSON merge patch: objects merge, arrays and scalars replace, ``null``
deletes. ``merged`` folds a kind's ``default`` blocks, least to most specific, into one object.

The readers (``seconds``, ``integer``, ``number``, ``flag``, ``text``, ``block``, ``blocks``,
``texts``) are the only code that reads camelCase keys: each settings module calls them once per
field, at fold time, and hands back a typed value; ``read_fields`` reads a whole block whose fields
are all of one kind (all durations, all counts) with one reader, keyed by the fields' camelCase
names. ``seconds`` parses a duration (``5s``, ``1m30s``) with the cached ``parse_duration``.
``overlay`` merges two settings values the way ``merge_patch`` merges their JSON (a field the
patch leaves ``None`` keeps the base's; nested settings merge).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from pydantic.alias_generators import to_camel

from atoll.resources.base import parse_duration

__all__ = [
    "EMPTY_CONF",
    "Conf",
    "block",
    "blocks",
    "flag",
    "freeze",
    "integer",
    "merge_patch",
    "merged",
    "number",
    "overlay",
    "read_fields",
    "seconds",
    "text",
    "texts",
    "thaw",
]


class Conf(Mapping[str, Any]):
    """A frozen JSON object: keys sorted, values frozen (objects are ``Conf``, arrays tuples); hashable."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        items = tuple(sorted((k, freeze(v)) for k, v in (data or {}).items()))
        self._data: dict[str, Any] = dict(items)
        self._hash = hash(items)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Conf):
            return self._hash == other._hash and self._data == other._data
        return isinstance(other, Mapping) and self._data == dict(other)

    def __repr__(self) -> str:
        return f"Conf({thaw(self)!r})"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = thaw(self)
        return out


EMPTY_CONF = Conf()


def freeze(value: Any) -> Any:
    """Plain JSON data -> frozen (``Conf`` for objects, tuples for arrays)."""
    if isinstance(value, Conf):
        return value
    if isinstance(value, Mapping):
        return Conf(value)
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Frozen data -> plain JSON data (dicts and lists)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch of plain (or frozen) data; returns new plain data, inputs untouched."""
    if not isinstance(patch, Mapping):
        return thaw(patch)
    out: dict[str, Any] = thaw(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def merged(defaults: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The ``default`` blocks of one kind, least to most specific, merge-patched in that order."""
    out: dict[str, Any] = {}
    for default in defaults:
        out = merge_patch(out, default)
    return out


T = TypeVar("T")


# -- readers: one camelCase key -> one typed value (None when the key is absent) -----------------


def _reader(convert: Callable[[Any], T]) -> Callable[[Mapping[str, Any], str], T | None]:
    def read(conf: Mapping[str, Any], key: str) -> T | None:
        value = conf.get(key)
        return None if value is None else convert(value)

    return read


seconds = _reader(lambda value: parse_duration(str(value)))
"""A duration field (``"5s"``) as seconds."""
integer = _reader(int)
number = _reader(float)
"""A number, or a decimal written as a string (``"1.9"``, a percentage)."""
flag = _reader(bool)
text = _reader(str)


def block(conf: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    """A nested object, or None when absent (an empty object is returned as it is)."""
    value = conf.get(key)
    return value if isinstance(value, Mapping) else None


def blocks(conf: Mapping[str, Any], key: str) -> tuple[Mapping[str, Any], ...]:
    """A list of objects (empty when absent)."""
    return tuple(v for v in conf.get(key) or () if isinstance(v, Mapping))


def texts(conf: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """A list of strings (empty when absent)."""
    return tuple(str(v) for v in conf.get(key) or ())


def read_fields(
    cls: type[T], conf: Mapping[str, Any], read: Callable[[Mapping[str, Any], str], Any], **given: Any
) -> T:
    """The settings dataclass ``cls`` with ``given`` fields as passed and every other field read from
    ``conf`` by ``read`` under the field's camelCase name (``max_retries`` <- ``maxRetries``)."""
    read_ones = {name: read(conf, key) for name, key in _camel_fields(cls) if name not in given}
    return cls(**read_ones, **given)


_CAMEL_FIELDS: dict[type[Any], tuple[tuple[str, str], ...]] = {}


def _camel_fields(cls: type[Any]) -> tuple[tuple[str, str], ...]:
    """(field name, camelCase key) of each field of the dataclass ``cls``, worked out once per class."""
    found = _CAMEL_FIELDS.get(cls)
    if found is None:
        found = _CAMEL_FIELDS[cls] = tuple((f.name, to_camel(f.name)) for f in dataclasses.fields(cls))
    return found


def overlay(base: T, patch: T | None) -> T:
    """``patch`` over ``base`` (two values of one settings dataclass): fields ``patch`` leaves ``None``
    keep ``base``'s, nested settings values are overlaid in turn, any other value replaces."""
    if patch is None:
        return base
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(patch):  # type: ignore[arg-type]
        mine, theirs = getattr(base, f.name), getattr(patch, f.name)
        if theirs is None:
            continue
        if dataclasses.is_dataclass(theirs) and dataclasses.is_dataclass(mine):
            theirs = overlay(mine, theirs)
        changes[f.name] = theirs
    out: T = dataclasses.replace(base, **changes)  # type: ignore[type-var]
    return out
