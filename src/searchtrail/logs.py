"""Structured logs: one JSON object per line (``serve --log-format json``).

A request's id (``X-Request-ID``) lives in ``REQUEST_ID`` while the request runs, so
every record logged meanwhile carries it, not only the request's own line. The text
format is uvicorn's, as before: this module then only holds the id.
"""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar
from typing import Any, Literal

__all__ = ["REQUEST_FIELDS", "REQUEST_ID", "JsonFormatter", "LogFormat", "uvicorn_log_config"]

LogFormat = Literal["text", "json"]

REQUEST_ID: ContextVar[str | None] = ContextVar("searchtrail_request_id", default=None)

# What a request's own line adds to a record (``extra=``), in this order in the object.
REQUEST_FIELDS = ("method", "route", "status", "latency_ms", "key_prefix", "request_id")


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "pid", "message", ...}``; a request's fields when the record
    has them, its id whenever one is set; ``exception`` with the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,  # which worker of serve
            "message": record.getMessage(),
        }
        for name in REQUEST_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if "request_id" not in out and (current := REQUEST_ID.get()) is not None:
            out["request_id"] = current
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


def _utc(created: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{whole}.{int(created % 1 * 1000):03d}Z"


def uvicorn_log_config(log_format: LogFormat, level: str) -> dict[str, Any] | None:
    """The ``log_config`` for ``uvicorn.run``: None keeps uvicorn's text format; JSON sends
    uvicorn's records, searchtrail's and any other library's to stderr as JSON lines.
    Applied by uvicorn in every worker process."""
    if log_format == "text":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    level = level.upper()
    own = {"handlers": ["stderr"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": own,
            "uvicorn.error": {"level": level},
            "uvicorn.access": own,
            "searchtrail": own,
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }
