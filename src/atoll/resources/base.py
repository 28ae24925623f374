"""Building blocks shared by every spec model: the model base class, validated scalars, error paths.

Every spec model derives from ``Spec``: frozen, unknown fields forbidden, strict types (YAML ``true``
is not a string, ``"5"`` is not an integer), Python names in snake_case with camelCase aliases (the
Universal YAML spelling). Scalars that users get wrong have their own annotated types whose error
messages name the bad value: ``Duration`` (``5s``, ``1m30s``), ``Port`` (1..65535), ``Name``
(lowercase DNS-style), ``Percentage`` (an integer or a quoted decimal, 0..100), ``Decimal`` (an
integer or a quoted decimal).

Text: every string of a document, keys included, must be encodable as UTF-8 and hold no NUL
(``text_problems``): a lone surrogate (JSON ``"\\ud800"``) would be stored and then fail every read
and every config built from it. ``codec.decode`` runs it first, so every entry (REST, CLI, node
metadata, KDS) refuses such text with the path of the field, before any message could echo it.

Cross-field rules live in model validators, written as ``@spec_check`` methods that record their
findings in a ``Check``; all of them are raised at once as ``Problems``: each problem carries a path
relative to the model that found it (``tags``, ``inbound[1].port``), which ``error_items`` joins
with pydantic's location so the final error names the exact field as written in YAML.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable, Mapping
from decimal import Decimal as _Decimal
from decimal import InvalidOperation
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from atoll.errors import join_path


class Spec(BaseModel):
    """Base of every spec model and of every nested block in a spec."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        alias_generator=to_camel,
        strict=True,
    )


M = TypeVar("M", bound=BaseModel)


# --- errors with precise paths -------------------------------------------------------------------


class Problems(ValueError):
    """Raised by a model validator: one ``(path, message)`` per problem, paths relative to the model."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{p}: {m}" if p else m for p, m in self.problems))


class Check:
    """Collects the problems one model validator finds; ``done()`` raises them all at once."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def extend(self, prefix: str, problems: list[tuple[str, str]]) -> None:
        for p, m in problems:
            self.add(join_path(prefix, p), m)

    def model(self, model: type[M], data: object, path: str) -> M | None:
        """Validate ``data`` as ``model``; on failure record its errors under ``path``."""
        try:
            return model.model_validate(data)
        except ValidationError as e:
            self.extend(path, error_items(e))
            return None

    def one_of(self, model: BaseModel, *fields: str) -> None:
        """Record "at least one of <fields> has to be defined" when every one of ``fields`` (Python
        names) of ``model`` is None; the message names them as written in YAML."""
        if all(getattr(model, f) is None for f in fields):
            names = ", ".join(type(model).model_fields[f].alias or f for f in fields)
            self.add("", f"at least one of {names} has to be defined")

    def done(self) -> None:
        if self.problems:
            raise Problems(self.problems)

    def __bool__(self) -> bool:
        return bool(self.problems)


S = TypeVar("S", bound=BaseModel)


def spec_check(rule: Callable[[S, Check], None]) -> Any:
    """Make ``rule(self, check)`` a model's cross-field validator: it runs after the fields are
    valid, records every problem in ``check``, and they are raised together (``Problems``)."""

    def validate(self: S) -> S:
        check = Check()
        rule(self, check)
        check.done()
        return self

    validate.__name__ = validate.__qualname__ = rule.__name__
    validate.__doc__ = rule.__doc__
    return model_validator(mode="after")(validate)


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _message(err: Mapping[str, Any]) -> str:
    typ = err["type"]
    value = err.get("input")
    msg = str(err["msg"])
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    if typ == "extra_forbidden":
        return "unknown field"
    if typ == "missing":
        return "required"
    if typ == "string_type":
        hint = " (quote it)" if isinstance(value, bool | int | float) else ""
        return f"must be a string, got {_kind(value)}{hint}"
    if typ in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer, got {_kind(value)} {value!r}"
    if typ in ("bool_type", "bool_parsing"):
        return f"must be true or false, got {_kind(value)}"
    if typ in ("float_type", "float_parsing"):
        return f"must be a number, got {_kind(value)}"
    if typ in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping, got {_kind(value)}"
    if typ == "list_type":
        return f"must be a list, got {_kind(value)}"
    if typ == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"must be one of {expected}; got {value!r}"
    if typ == "too_short":
        if isinstance(value, str):
            return "must not be empty"
        n = ctx.get("min_length")
        return "must have at least one item" if n == 1 else f"must have at least {n} items"
    if typ == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if typ == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}, got {value!r}"
    if typ == "greater_than":
        return f"must be greater than {ctx.get('gt')}, got {value!r}"
    if typ == "less_than_equal":
        return f"must be at most {ctx.get('le')}, got {value!r}"
    if typ == "less_than":
        return f"must be less than {ctx.get('lt')}, got {value!r}"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


def error_items(e: ValidationError) -> list[tuple[str, str]]:
    """``(path, message)`` for each pydantic error, paths as written in YAML, each problem once."""
    out: list[tuple[str, str]] = []
    for err in e.errors(include_url=False):
        path = ""
        for part in err["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif isinstance(part, str) and ("[" in part or " " in part or part.startswith("function-")):
                continue  # pydantic's names for union members / validators, not fields
            else:
                path = join_path(path, str(part))
        ctx = err.get("ctx") or {}
        exc = ctx.get("error")
        if isinstance(exc, Problems):
            out.extend((join_path(path, p), m) for p, m in exc.problems)
        else:
            out.append((path, _message(err)))
    seen: set[tuple[str, str]] = set()
    unique = []
    for item in out:
        if item not in seen:
            seen.add(item)
            unique.append(item)
    return unique


# --- text ----------------------------------------------------------------------------------------


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text (a lone surrogate, a NUL), or None if it can."""
    if "\x00" in value:
        return "must not contain a NUL character (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = ascii(value[e.start])[1:-1]
        return f"must be valid Unicode text: a lone surrogate ({bad}) at character {e.start} cannot be encoded as UTF-8"
    return None


def text_problems(doc: object, path: str = "") -> list[tuple[str, str]]:
    """``(path, message)`` for every string in ``doc`` (mappings, lists, scalars; keys included) that
    ``text_problem`` refuses. Paths as written in YAML; a bad key is named by its escaped spelling."""
    out: list[tuple[str, str]] = []
    stack: list[tuple[str, object]] = [(path, doc)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem is not None:
                out.append((where, problem))
        elif isinstance(value, Mapping):
            for k, v in value.items():
                key = k if isinstance(k, str) else str(k)
                problem = text_problem(key)
                shown = key if problem is None else ascii(key)[1:-1]
                child = join_path(where, shown)
                if problem is not None:
                    out.append((child, f"key {problem}"))
                stack.append((child, v))
        elif isinstance(value, list | tuple):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))
    return sorted(out)


# --- scalars -------------------------------------------------------------------------------------

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


@functools.lru_cache(maxsize=4096)
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

NAME_CHARS = re.compile(r"^[0-9a-z.\-_]+$")
"""Characters Kuma allows in names that refer to resources (targetRef and backendRef names)."""

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


def decimal_value(value: int | str) -> float:
    """The number in an int-or-decimal-string field (``50``, ``"2.5"``)."""
    return float(value)


def _decimal(value: object) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str | float):
        raise ValueError(f"must be an integer or a decimal in quotes, got {_kind(value)}")
    if isinstance(value, float):
        raise ValueError(f'decimal numbers must be quoted: write "{value}", not {value}')
    if isinstance(value, str):
        try:
            d = _Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f'invalid decimal "{value}"') from None
        if not d.is_finite():
            raise ValueError(f'invalid decimal "{value}"')
    return value


def _percentage(value: object) -> int | str:
    v = _decimal(value)
    if not 0 <= decimal_value(v) <= 100:
        raise ValueError(f"percentage {v} out of range 0..100")
    return v


Decimal = Annotated[int | str, PlainValidator(_decimal)]
"""An integer, or a decimal written as a string (``"1.9"``) — Kuma's int-or-string numbers."""

Percentage = Annotated[int | str, PlainValidator(_percentage)]
"""0..100, an integer or a decimal string (``50``, ``"2.5"``)."""


def _check_base64(value: str) -> str:
    try:
        base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError("must be base64-encoded data") from None
    return value


Base64 = Annotated[str, AfterValidator(_check_base64)]

_HOST_PORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-]+):(?P<port>\d+)$")


def split_host_port(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) -> (host, port); ``ValueError`` naming the value if not."""
    m = _HOST_PORT.match(value)
    if not m:
        raise ValueError(f'must be host:port, got "{value}"')
    port = int(m.group("port"))
    if not 1 <= port <= 65535:
        raise ValueError(f'port {port} out of range 1..65535 in "{value}"')
    return m.group("host").strip("[]"), port


def _check_host_port(value: str) -> str:
    split_host_port(value)
    return value


HostPort = Annotated[str, AfterValidator(_check_host_port)]
"""``host:port`` with a port in 1..65535."""

Tags = dict[str, str]
"""A tag or label map: string keys, string values (YAML ``true`` or ``5`` must be quoted)."""
