"""Logging set-up for the server: one handler, a human or JSON formatter, levels by concern.

Theory of operation
-------------------
coord logs through the standard library's :mod:`logging`, under loggers named by concern
(CONVENTIONS.md item 11): ``coord.server`` (lifecycle, connections, sessions, plugins),
``coord.access`` (one line per client request, at DEBUG), ``coord.audit`` (who changed what,
with ``audit = true``) and ``coord.replication`` (leaders, elections, members and their
links). Code that logs passes the facts of a record as ``extra=`` fields (``session``,
``client``, ``op``, ``path``, ``zxid``, ``member``, ``term`` ...) as well as in the message,
so the JSON format carries them as fields while the human format stays one readable line.

:func:`configure_logging` installs one handler on the root logger (standard error, or the
``log_file``, reopened when logrotate moves it) and sets the levels: ``log_level`` on the
``coord`` logger (and the root, for third-party libraries), then each ``log_levels`` entry
on ``coord.<concern>``. Calling it again replaces the handler and the levels it set, so a
process configures logging once per configuration, never twice over.

A disabled concern costs nothing on a hot path: callers test
``logger.isEnabledFor(level)`` (cached by :mod:`logging`) before building a record, as the
access log does once per connection.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time
from collections.abc import Mapping
from typing import Any, Final, TextIO

__all__ = [
    "CONCERNS",
    "HUMAN_DATE_FORMAT",
    "HUMAN_FORMAT",
    "JsonFormatter",
    "concern_logger",
    "configure_logging",
    "record_fields",
]

#: The concerns coord's server logs under, as ``log_levels`` keys (the logger is
#: ``coord.<key>``); the same names as ``coord.server._config.LOG_CONCERNS``.
CONCERNS: Final[Mapping[str, str]] = {
    "server": "Lifecycle, connections, sessions, plugins, quotas.",
    "access": "One line per client request (DEBUG): session, client, op, path, result, "
    "zxid, latency.",
    "audit": "With audit = true: state changes and authentication attempts.",
    "replication": "Leader changes, elections, membership, peer links, catch-up.",
}

#: The human format: time, level, logger (named by concern), message.
HUMAN_FORMAT: Final = "%(asctime)s.%(msecs)03d %(levelname)-8s %(name)s: %(message)s"
HUMAN_DATE_FORMAT: Final = "%Y-%m-%dT%H:%M:%S"

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRIBUTES: Final = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def concern_logger(concern: str) -> str:
    """The logger name of a ``log_levels`` key: ``access`` -> ``coord.access``.

    A key that already starts with ``coord`` is a logger name and is returned unchanged.
    """
    if concern == "coord" or concern.startswith("coord."):
        return concern
    return f"coord.{concern}"


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a record was given with ``extra=`` (nothing logging adds itself)."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRIBUTES}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line.

    Keys: ``ts`` (RFC 3339, UTC, milliseconds: ``2026-11-21T10:35:16.323Z``), ``level``,
    ``logger``, ``message``, then every ``extra=`` field of the record (values JSON cannot
    hold are written as their ``str()``), and ``exception`` / ``stack`` (the formatted
    traceback, as a string) when the record has one.
    """

    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        millis = int((record.created - seconds) * 1000)
        obj: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record_fields(record).items():
            obj.setdefault(key, value)
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            obj["exception"] = record.exc_text
        if record.stack_info:
            obj["stack"] = self.formatStack(record.stack_info)
        return json.dumps(obj, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time of each record (pytest swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


#: Marks the handler configure_logging installed, so a second call replaces it.
_HANDLER_MARK: Final = "_coord_handler"
#: Loggers whose level configure_logging set, reset by the next call.
_configured: set[str] = set()


def configure_logging(
    level: str = "INFO",
    *,
    format: str = "human",
    levels: Mapping[str, str] | None = None,
    file: str | None = None,
) -> logging.Handler:
    """Send log records to standard error (or ``file``) in the ``format`` chosen.

    Args:
        level: the level of every ``coord`` logger (``ServerConfig.log_level``); the root
            logger gets it too, for the libraries coord uses.
        format: ``"human"`` (``time level logger: message``) or ``"json"`` (one object per
            line, see :class:`JsonFormatter`).
        levels: levels by concern (``ServerConfig.log_levels``), e.g. ``{"access":
            "DEBUG"}``; a key is a concern (``access`` is ``coord.access``) or a logger name.
        file: a file to append to (created if missing; reopened when moved away, as by
            logrotate); None writes to standard error.

    Returns:
        The installed handler.

    Raises:
        ValueError: ``format`` or a level is unknown.
        OSError: ``file`` cannot be opened.
    """
    if format == "json":
        formatter: logging.Formatter = JsonFormatter()
    elif format == "human":
        formatter = logging.Formatter(HUMAN_FORMAT, HUMAN_DATE_FORMAT)
    else:
        raise ValueError(f'log format must be "human" or "json", not {format!r}')
    handler: logging.Handler
    if file is None:
        handler = _StderrHandler()
    else:
        handler = logging.handlers.WatchedFileHandler(file, encoding="utf-8")
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    for name in _configured:
        logging.getLogger(name).setLevel(logging.NOTSET)
    _configured.clear()
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("coord").setLevel(level.upper())
    _configured.add("coord")
    for concern, concern_level in (levels or {}).items():
        name = concern_logger(concern)
        logging.getLogger(name).setLevel(concern_level.upper())
        _configured.add(name)
    return handler
