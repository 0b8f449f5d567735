"""What every log line says about where it comes from: the message being processed, its
ticket, the daemon that wrote it; and the two ways lines are written (`[log] format`).

The pipeline names the message (`about_message`) and, once known, its ticket
(`set_ticket`) in context variables; `Context` (a logging.Filter on the handler) copies them
onto each record, and `LineFormatter` writes the record as text or as one JSON object per
line. Only the CLI and the daemon install them (`use_format`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_message_id: ContextVar[str | None] = ContextVar("maildesk_message_id", default=None)
_ticket: ContextVar[str | None] = ContextVar("maildesk_ticket", default=None)


@contextmanager
def about_message(message_id: str | None, ticket: str | None = None) -> Iterator[None]:
    """Log lines written in this block (in this thread) name the message and its ticket."""
    message_token = _message_id.set(message_id)
    ticket_token = _ticket.set(ticket)
    try:
        yield
    finally:
        _ticket.reset(ticket_token)
        _message_id.reset(message_token)


def set_ticket(ref: str | None) -> None:
    """The ticket the message at hand is on, from now to the end of its `about_message`."""
    _ticket.set(ref)


_daemon: str | None = None  # a pipeline worker process: its holder id (HOST:PID/wN)


def daemon_id() -> str:
    """This process as `maildesk status` knows it: host:pid (a pipeline worker process of
    `serve --workers`: its daemon's host:pid and /wN, given to use_daemon)."""
    return _daemon or f"{socket.gethostname()}:{os.getpid()}"


def use_daemon(name: str) -> None:
    global _daemon
    _daemon = name


class Context(logging.Filter):
    """Puts `message_id`, `ticket` and `daemon` on every record (unless given as extra)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "message_id"):
            record.message_id = _message_id.get()
        if not hasattr(record, "ticket"):
            record.ticket = _ticket.get()
        if not hasattr(record, "daemon"):
            record.daemon = daemon_id()
        return True


class LineFormatter(logging.Formatter):
    """A record as a line of text (TEXT_FORMAT) or as one JSON object: time, level, logger,
    message, message_id, ticket, daemon (null when not known), and exception when any."""

    def __init__(self, kind: str = "text") -> None:
        super().__init__(TEXT_FORMAT)
        self.kind = kind

    def format(self, record: logging.LogRecord) -> str:
        if self.kind != "json":
            return super().format(record)
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "message_id": getattr(record, "message_id", None),
            "ticket": getattr(record, "ticket", None),
            "daemon": getattr(record, "daemon", None),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def install(handler: logging.Handler, kind: str = "text") -> None:
    """Make `handler` write maildesk's lines (the context filter and LineFormatter)."""
    handler.addFilter(Context())
    handler.setFormatter(LineFormatter(kind))


def use_format(kind: str) -> None:
    """Switch the handlers `install` made to `kind` ("text" or "json"); others stay."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, LineFormatter):
            handler.formatter.kind = kind
