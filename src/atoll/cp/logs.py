"""Process logging: plain text lines (default) or one JSON object per line.

``setup_logging(format, level)`` puts one handler on the root logger, writing to stderr, and returns
a function that puts the previous handlers and level back (so an in-process run leaves no trace).
JSON records carry ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``, any ``extra=`` fields,
and ``exc`` with the traceback when there is one.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(format: str = "text", level: str = "info", stream: TextIO | None = None) -> Callable[[], None]:
    """Configure the root logger; returns the function that undoes it."""
    root = logging.getLogger()
    previous_handlers = list(root.handlers)
    previous_level = root.level
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root.handlers = [handler]
    root.setLevel(level.upper())

    def restore() -> None:
        root.handlers = previous_handlers
        root.setLevel(previous_level)
        handler.close()

    return restore
