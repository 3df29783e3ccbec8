"""Structured logging: one line an event, `key=value` pairs that journald and grep can read.

Under systemd (stderr connected to the journal, `JOURNAL_STREAM` set) each line starts
with its syslog priority, `<3>` for an error, which journald takes as the entry's
priority: `journalctl -u mailbot -p err` then finds the errors.

Personal details and a concern's free text never go into fields logged above DEBUG;
events carry references, counts, UIDs and dispositions instead.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any

# sd-daemon(3) priorities: journald reads a leading "<N>" on a line of a service's stderr.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


def journald_priority(levelno: int) -> int:
    return next((p for level, p in sorted(_PRIORITY.items(), reverse=True) if levelno >= level),
                7)


class LogfmtFormatter(logging.Formatter):
    def __init__(self, *, priority_prefix: bool = False) -> None:
        super().__init__()
        self.priority_prefix = priority_prefix

    def format(self, record: logging.LogRecord) -> str:
        line = self._logfmt(record)
        if self.priority_prefix:
            return f"<{journald_priority(record.levelno)}>{line}"
        return line

    def _logfmt(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or record.getMessage(),
        }
        fields.update(getattr(record, "fields", {}))
        if record.exc_info and record.levelno <= logging.DEBUG:
            fields["traceback"] = self.formatException(record.exc_info)
        elif record.exc_info and record.exc_info[0] is not None:
            fields["error_type"] = record.exc_info[0].__name__
        return " ".join(f"{key}={_quote(value)}" for key, value in fields.items())


_NEEDS_QUOTES = re.compile(r'[ ="\\\n\r\t]')


def _quote(value: Any) -> str:
    text = str(value)
    if text == "" or _NEEDS_QUOTES.search(text):
        text = text.replace("\\", "\\\\").replace('"', '\\"')
        text = text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
        return f'"{text}"'
    return text


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time, not what it was at setup."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup(level: int = logging.INFO) -> None:
    handler = _StderrHandler()
    handler.setFormatter(LogfmtFormatter(priority_prefix=bool(os.environ.get("JOURNAL_STREAM"))))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter (APScheduler job lines, Alembic) is useful only when debugging.
    for noisy in ("apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    # flufl.bounce logs tracebacks of hostile input, which may quote the message itself.
    logging.getLogger("flufl.bounce").setLevel(
        logging.DEBUG if level <= logging.DEBUG else logging.CRITICAL
    )


def event(logger: logging.Logger, level: int, name: str, **fields: Any) -> None:
    """Log one event: `event(log, logging.INFO, "message_recorded", uid=4, kind="bounce")`."""
    if logger.isEnabledFor(level):
        # makeRecord() rather than log(): lines name their logger, not a source line, and
        # finding the caller's frame was a third of the cost of an event.
        logger.handle(logger.makeRecord(logger.name, level, "", 0, name, (), None,
                                        extra={"event": name, "fields": fields}))
