"""When an imported message happened: its own Date, within bounds.

`maildesk import` replays a mailbox's past (App.replay): a ticket it opens is created, and a
reply it adds updates the ticket, at the time the mail was written, not at the import.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from maildesk.app import App
from maildesk.mail.message import ParsedMessage

EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)  # a Date before this is a broken clock


def message_time(app: App, msg: ParsedMessage) -> datetime:
    """The time the pipeline dates the message's changes by: now, or for imported mail its
    Date header (not after now; a missing, unreadable or pre-1990 Date counts as now)."""
    now = app.now()
    if not app.historic:
        return now
    written = sent_at(msg)
    if written is None or written < EARLIEST:
        return now
    return min(written, now)


def sent_at(msg: ParsedMessage) -> datetime | None:
    """The message's Date header as an aware datetime (UTC), or None."""
    value = msg.header("date")
    if not value:
        return None
    try:
        written = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if written.tzinfo is None:  # "-0000": the time is UTC, its zone unknown (RFC 5322)
        written = written.replace(tzinfo=UTC)
    return written.astimezone(UTC)
