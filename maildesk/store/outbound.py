"""Outgoing mail: the outbox entries and their leases to senders, and the counts of mail
already sent that the auto-reply and per-ticket rate limits look at."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, defer

from maildesk.store.broadcasts import BROADCAST_MAILS
from maildesk.store.db import for_update
from maildesk.store.models import Contact, Message, OutboxEntry, Ticket
from maildesk.terms import OutboxStatus

# Asked for every new ticket: built once (PREBUILT in maildesk.store.db).
_ACKNOWLEDGED_SINCE = (
    select(func.count())
    .select_from(Message)
    .join(Ticket, Message.ticket_id == Ticket.id)
    .where(
        Ticket.requester_id == bindparam("contact"),
        Message.direction == "out",
        Message.kind == "acknowledgement",
        Message.created_at >= bindparam("since"),
    )
)


def auto_replies_since(session: Session, contact: Contact, since: datetime) -> int:
    """Acknowledgements sent to this contact since then (for the auto-reply rate limit)."""
    if contact.id is None:
        return 0  # not even flushed yet: no mail has gone to it
    with session.no_autoflush:  # see _uncounted
        params = {"contact": contact.id, "since": since}
        return int(session.scalar(_ACKNOWLEDGED_SINCE, params) or 0)


def notices_to_since(session: Session, kind: str, address: str, since: datetime) -> int:
    """Notices of this kind sent to this address since then, over all tickets (for the
    rate limit of automatic notices to one agent)."""
    stmt = select(Message.to).where(
        Message.direction == "out", Message.kind == kind, Message.created_at >= since
    )
    with session.no_autoflush:  # see _uncounted
        return sum(1 for to in session.scalars(stmt) if address in (to or ()))


# _uncounted: the rate limits count mail of earlier messages, which each message's savepoint
# flushed when it ended; an autoflush before the count would only write the message at
# hand's own rows early (a flush of its own, for a count they cannot change).


def outbound_since(session: Session, ticket_id: int, since: datetime) -> int:
    """Mails this ticket queued since then (for the per-ticket loop cap).

    Counted once per transaction and then kept up to date by `count_outbound`.
    """
    cache: dict[int, int] = session.info.setdefault("outbound_since", {})
    if ticket_id in cache:
        return cache[ticket_id]
    stmt = (
        select(func.count())
        .select_from(Message)
        .where(
            Message.ticket_id == ticket_id,
            Message.direction == "out",
            Message.created_at >= since,
            Message.kind.not_in(BROADCAST_MAILS),  # they answer no mail: no loop
        )
    )
    cache[ticket_id] = int(session.scalar(stmt) or 0)
    return cache[ticket_id]


def count_outbound(session: Session, ticket_id: int) -> None:
    """One more mail queued for a ticket."""
    cache: dict[int, int] = session.info.setdefault("outbound_since", {})
    if ticket_id in cache:
        cache[ticket_id] += 1


def no_outbound_yet(session: Session, ticket_id: int) -> None:
    """A ticket made in this transaction has sent nothing: no need to count."""
    session.info.setdefault("outbound_since", {})[ticket_id] = 0


# The composed mail (attachments and all) is read only to be sent: listing entries and
# recording what became of them leave `raw` in the database.
_NO_RAW = defer(OutboxEntry.raw, raiseload=True)


def list_outbox(
    session: Session, *, status: str | None = None, limit: int = 1000
) -> list[OutboxEntry]:
    """The newest entries, without their bytes."""
    stmt = select(OutboxEntry).options(_NO_RAW).order_by(OutboxEntry.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(OutboxEntry.status == status)
    return list(session.scalars(stmt))


def outbox_entries(session: Session, ids: Sequence[int]) -> dict[int, OutboxEntry]:
    """These entries by id, without their bytes (to record an outcome or requeue one)."""
    stmt = select(OutboxEntry).options(_NO_RAW).where(OutboxEntry.id.in_(ids))
    return {e.id: e for e in session.scalars(stmt)}


def due_outbox(session: Session, now: datetime, limit: int = 50) -> list[OutboxEntry]:
    stmt = (
        select(OutboxEntry)
        .where(OutboxEntry.status == OutboxStatus.QUEUED, OutboxEntry.next_attempt_at <= now)
        .order_by(OutboxEntry.next_attempt_at, OutboxEntry.id)
        .limit(limit)
    )
    # Several daemons on one database: each entry goes to exactly one sender.
    return list(session.scalars(for_update(stmt, session, skip_locked=True)))


def next_outbox_due(session: Session) -> datetime | None:
    stmt = select(func.min(OutboxEntry.next_attempt_at)).where(
        OutboxEntry.status == OutboxStatus.QUEUED
    )
    return session.scalar(stmt)
