"""Log line formats: ``text`` for people (the default), ``json`` for log collectors.

``reconciler --log-format json COMMAND`` (or ``RECONCILER_LOG_FORMAT=json``) makes every
log record one JSON object on one line: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
``message``, plus the record's structured fields (``extra={"fields": {...}}``: the access
log's method, path and status; the watch tick's commit and result). The choice is kept
in the environment so that gunicorn's worker processes, forked later, use it too.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

ENV = "RECONCILER_LOG_FORMAT"
FORMATS = ("text", "json")


def current() -> str:
    value = os.environ.get(ENV, "text").lower()
    return value if value in FORMATS else "text"


def choose(fmt: str) -> None:
    os.environ[ENV] = fmt


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``record.fields`` (a mapping) is merged in."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update({k: v for k, v in fields.items() if k not in out})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def formatter(text_format: str) -> logging.Formatter:
    """The formatter for the chosen format (``text_format`` for text)."""
    return JsonFormatter() if current() == "json" else logging.Formatter(text_format)


def gunicorn_logconfig() -> dict[str, Any] | None:
    """gunicorn's own log lines (worker start, errors) as JSON too, when chosen."""
    if current() != "json":
        return None
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"generic": {"()": "reconciler.logfmt.JsonFormatter"}}}
