"""Building blocks shared by every spec model: the model base class and validated scalar types.

Every spec model derives from ``Spec``: frozen, unknown fields forbidden, Python names in snake_case
with camelCase aliases (the Universal YAML spelling). Scalars that users get wrong have their own
annotated types whose error messages name the bad value: ``Duration`` (``5s``, ``1m30s``),
``Port`` (1..65535), ``Name`` (lowercase DNS-style, at most 253 characters).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic.alias_generators import to_camel


class Spec(BaseModel):
    """Base of every spec model and of every nested block in a spec."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        alias_generator=to_camel,
        strict=False,
    )


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|y)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "y": 365 * 86400.0,
}


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration (``300ms``, ``1m30s``, ``24h``; ``d`` and ``y`` as Kuma allows).

    Raises ``ValueError`` with ``invalid duration "<text>"`` for anything else.
    """
    if not isinstance(text, str) or not text:
        raise ValueError(f'invalid duration "{text}"')
    if text == "0":
        return 0.0
    pos = 0
    total = 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            raise ValueError(f'invalid duration "{text}"')
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise ValueError(f'invalid duration "{text}"')
    return total


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


def _require_str(value: object) -> object:
    # YAML turns `5` into an int; durations must be strings ("5s").
    if not isinstance(value, str):
        raise ValueError(f'invalid duration "{value}": expected a string such as "5s"')
    return value


Duration = Annotated[str, BeforeValidator(_require_str), AfterValidator(_check_duration)]
"""A duration kept as the user wrote it; use ``parse_duration`` for seconds."""


def _check_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"port {value} out of range 1..65535")
    return value


Port = Annotated[int, AfterValidator(_check_port)]

_NAME = re.compile(r"^[a-z0-9]([a-z0-9.\-_]*[a-z0-9])?$")


def check_name(value: str) -> str:
    """Resource names: lowercase letters, digits, ``-``, ``.``, ``_``; start and end alphanumeric."""
    if not value:
        raise ValueError("name must not be empty")
    if len(value) > 253:
        raise ValueError(f"name is {len(value)} characters long, at most 253 allowed")
    if not _NAME.match(value):
        raise ValueError(
            f'invalid name "{value}": use lowercase letters, digits, "-", "." or "_", '
            "starting and ending with a letter or digit"
        )
    return value


Name = Annotated[str, AfterValidator(check_name)]
