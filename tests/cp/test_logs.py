"""Log setup: text lines by default, one JSON object per line with ``log_format=json``; undone on exit."""

from __future__ import annotations

import io
import json
import logging

from atoll.cp.logs import setup_logging


def test_json_lines_carry_level_logger_message_extras_and_traceback() -> None:
    out = io.StringIO()
    restore = setup_logging("json", "info", stream=out)
    try:
        log = logging.getLogger("atoll.test")
        log.debug("hidden")
        log.info("hello %s", "world", extra={"zone": "east", "port": 5681})
        try:
            raise ValueError("bad")
        except ValueError:
            log.exception("failed")
    finally:
        restore()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert (first["level"], first["logger"], first["msg"]) == ("info", "atoll.test", "hello world")
    assert (first["zone"], first["port"]) == ("east", 5681)
    assert first["time"].endswith("+00:00")
    assert second["level"] == "error" and "ValueError: bad" in second["exc"]


def test_text_format_and_restore() -> None:
    root = logging.getLogger()
    handlers_before = list(root.handlers)
    out = io.StringIO()
    restore = setup_logging("text", "warning", stream=out)
    logging.getLogger("atoll.test").info("quiet")
    logging.getLogger("atoll.test").warning("loud")
    restore()
    assert out.getvalue().endswith("WARNING atoll.test: loud\n")
    assert "quiet" not in out.getvalue()
    assert root.handlers == handlers_before
