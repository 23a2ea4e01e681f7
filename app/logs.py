"""How every CityOps process logs: readable lines by default, or one JSON object per line
(`CITYOPS_LOG_FORMAT=json`) for a log collector.

A JSON line carries the record's own time (UTC, ISO 8601), level, logger and message, the
formatted exception if there is one, and every extra the code attached (`extra={...}`), such
as the request id, route and status of an HTTP request (command-center/observability.py).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REQUEST_ID: ContextVar[str | None] = ContextVar("cityops_request_id", default=None)
"""The id of the HTTP request being served (set by the request middleware): every record
logged while serving it carries it, whichever module logs. Only logs read it."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The attributes every LogRecord has: anything else on a record is an extra.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class LogSettings(BaseSettings):
    """The logging section of the settings (`Settings.log`, CITYOPS_LOG_*): read on its own
    when a process starts, before the rest of its settings is checked."""

    model_config = SettingsConfigDict(env_prefix="CITYOPS_LOG_", extra="ignore", frozen=True)

    format: LogFormat = Field(
        default=LogFormat.TEXT,
        description="text: readable lines; json: one JSON object per line (time, level, "
        "logger, message, exception and extras such as request_id).")
    level: str = Field(default="INFO", pattern=r"^(?i:debug|info|warning|error|critical)$")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: an extra that JSON cannot hold (a UUID, a datetime) is written as text.
        return json.dumps(entry, ensure_ascii=False, default=str)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to records logged while an HTTP request is served."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = REQUEST_ID.get()
            if request_id is not None:
                record.request_id = request_id
        return True


def configure_logging(settings: LogSettings | None = None, *,
                      stream: TextIO | None = None) -> logging.Handler:
    """Send every logger's records to `stream` (stderr) in the configured format; replaces
    the root logger's handlers (a second call reconfigures). Returns the handler."""
    settings = settings if settings is not None else LogSettings()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if settings.format is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
    return handler


def configure_logging_or_exit() -> None:
    """`configure_logging` from the environment for a command-line entry point; a bad
    `CITYOPS_LOG_FORMAT` or `CITYOPS_LOG_LEVEL` is one clear line and exit status 2."""
    from cityops.settings import read_settings

    configure_logging(read_settings(LogSettings))
