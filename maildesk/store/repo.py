"""Queries the pipeline and the read commands need. Every SQL statement lives here."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from maildesk.store.models import (
    Contact,
    Event,
    ImapCheckpoint,
    Message,
    OutboxEntry,
    RawMessage,
    Ticket,
)


def save_raw(
    session: Session,
    raw: bytes,
    *,
    origin: str,
    now: datetime,
    envelope_from: str | None = None,
    envelope_to: Sequence[str] = (),
) -> RawMessage:
    """Store raw bytes exactly as received, status pending. The caller commits."""
    row = RawMessage(
        received_at=now,
        origin=origin,
        envelope_from=envelope_from,
        envelope_to=list(envelope_to),
        size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        raw=raw,
        status="pending",
    )
    session.add(row)
    session.flush()
    return row


def raw_exists(session: Session, sha256: str) -> bool:
    return (
        session.scalar(select(RawMessage.id).where(RawMessage.sha256 == sha256).limit(1))
        is not None
    )


def pending_raw_ids(session: Session, limit: int = 100) -> list[int]:
    stmt = select(RawMessage.id).where(RawMessage.status == "pending").order_by(RawMessage.id)
    return list(session.scalars(stmt.limit(limit)))


def claim_raw(session: Session, raw_id: int, status: str, now: datetime) -> bool:
    """Move a pending raw message to its final status; False if another worker got there first."""
    result = session.execute(
        update(RawMessage)
        .where(RawMessage.id == raw_id, RawMessage.status == "pending")
        .values(status=status, processed_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


def message_exists(session: Session, message_id: str) -> bool:
    stmt = select(Message.id).where(Message.message_id == message_id).limit(1)
    return session.scalar(stmt) is not None


def message_ids_exist(session: Session, message_ids: Sequence[str]) -> set[str]:
    if not message_ids:
        return set()
    stmt = select(Message.message_id).where(Message.message_id.in_(list(message_ids)))
    return set(session.scalars(stmt))


class StoreThreadIndex:
    """The ThreadIndex of maildesk.thread, answered from the database."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def ticket_exists(self, ticket_id: int) -> bool:
        return self.session.get(Ticket, ticket_id) is not None

    def ticket_for_message_ids(self, message_ids: Sequence[str]) -> int | None:
        if not message_ids:
            return None
        stmt = select(Message.message_id, Message.ticket_id).where(
            Message.message_id.in_(list(message_ids))
        )
        found: dict[str, int] = {mid: tid for mid, tid in self.session.execute(stmt)}
        # The nearest ancestor wins: message_ids come nearest first.
        return next((found[m] for m in message_ids if m in found), None)

    def ticket_for_token(self, token: str) -> int | None:
        return self.session.scalar(select(Ticket.id).where(Ticket.reply_token == token))


def contact_for(session: Session, email: str, name: str, now: datetime) -> Contact:
    contact = session.scalar(select(Contact).where(Contact.email == email))
    if contact is None:
        contact = Contact(email=email, name=name, created_at=now)
        session.add(contact)
        session.flush()
    elif name and not contact.name:
        contact.name = name
    return contact


def clear_bouncing(session: Session, email: str) -> None:
    """Mail from an address proves it receives mail again."""
    session.execute(
        update(Contact)
        .where(Contact.email == email, Contact.bounced_at.is_not(None))
        .values(bounced_at=None, bounce_reason=None)
    )


def auto_replies_since(session: Session, email: str, since: datetime) -> int:
    """Acknowledgements sent to this address since then (for the auto-reply rate limit)."""
    stmt = (
        select(func.count())
        .select_from(Message)
        .join(Ticket, Message.ticket_id == Ticket.id)
        .join(Contact, Ticket.requester_id == Contact.id)
        .where(
            Contact.email == email,
            Message.direction == "out",
            Message.kind == "acknowledgement",
            Message.created_at >= since,
        )
    )
    return int(session.scalar(stmt) or 0)


def tickets_opened_since(session: Session, email: str, since: datetime) -> int:
    """New tickets this sender opened since then (for the flood guard)."""
    stmt = (
        select(func.count())
        .select_from(Ticket)
        .join(Contact, Ticket.requester_id == Contact.id)
        .where(Contact.email == email, Ticket.created_at >= since)
    )
    return int(session.scalar(stmt) or 0)


def bounced_message(session: Session, message_ids: Sequence[str]) -> Message | None:
    """The stored message a bounce quotes: one we sent if any, else any of the ticket's."""
    if not message_ids:
        return None
    stmt = (
        select(Message)
        .where(Message.message_id.in_(list(message_ids)[:200]))
        .order_by((Message.direction == "out").desc(), Message.id.desc())
        .limit(1)
    )
    return session.scalar(stmt)


def mark_bouncing(session: Session, emails: Sequence[str], reason: str, now: datetime) -> None:
    if emails:
        session.execute(
            update(Contact)
            .where(Contact.email.in_(list(emails)))
            .values(bounced_at=now, bounce_reason=reason[:1000])
        )


def add_event(
    session: Session,
    ticket: Ticket,
    kind: str,
    now: datetime,
    /,
    *,
    actor: str = "system",
    **data: Any,
) -> Event:
    """Append an event to the audit log; `data` says what changed and why."""
    event = Event(ticket_id=ticket.id, at=now, kind=kind, actor=actor, data=data)
    session.add(event)
    return event


OPEN_STATUSES = ("new", "open", "pending", "on-hold")


def pick_agent(session: Session, strategy: str, candidates: Sequence[str]) -> str | None:
    """An assignee among candidates: round-robin (longest since last assigned) or least-open.

    Both are computed from the tickets themselves, so they need no counter and hold across
    restarts and several daemons; ties go to the order the agents are configured in.
    """
    if not candidates:
        return None
    if strategy == "least-open":
        stmt = (
            select(Ticket.assignee, func.count())
            .where(Ticket.assignee.in_(candidates), Ticket.status.in_(OPEN_STATUSES))
            .group_by(Ticket.assignee)
        )
    else:
        stmt = (
            select(Ticket.assignee, func.max(Ticket.id))
            .where(Ticket.assignee.in_(candidates))
            .group_by(Ticket.assignee)
        )
    score = {row[0]: int(row[1]) for row in session.execute(stmt)}
    return min(candidates, key=lambda a: score.get(a, 0))


def list_tickets(
    session: Session, *, status: str | None = None, queue: str | None = None, limit: int = 1000
) -> list[Ticket]:
    stmt = select(Ticket).order_by(Ticket.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(Ticket.status == status)
    if queue:
        stmt = stmt.where(Ticket.queue == queue)
    return list(session.scalars(stmt))


def ticket_with_history(session: Session, ticket_id: int) -> Ticket | None:
    stmt = (
        select(Ticket)
        .where(Ticket.id == ticket_id)
        .options(
            selectinload(Ticket.messages).selectinload(Message.attachments),
            selectinload(Ticket.events),
        )
    )
    return session.scalar(stmt)


def list_outbox(
    session: Session, *, status: str | None = None, limit: int = 1000
) -> list[OutboxEntry]:
    stmt = select(OutboxEntry).order_by(OutboxEntry.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(OutboxEntry.status == status)
    return list(session.scalars(stmt))


def due_outbox(session: Session, now: datetime, limit: int = 50) -> list[OutboxEntry]:
    stmt = (
        select(OutboxEntry)
        .where(OutboxEntry.status == "queued", OutboxEntry.next_attempt_at <= now)
        .order_by(OutboxEntry.next_attempt_at, OutboxEntry.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Several daemons on one database: each entry goes to exactly one sender.
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.scalars(stmt))


def next_outbox_due(session: Session) -> datetime | None:
    stmt = select(func.min(OutboxEntry.next_attempt_at)).where(OutboxEntry.status == "queued")
    return session.scalar(stmt)


# Raw messages kept but not on a ticket: processing failed, a rule dropped it, a sender
# flooded the desk, or a bounce of mail that is on no ticket.
SET_ASIDE = ("quarantined", "spam", "flood", "bounce")
# What `maildesk quarantine drop` leaves: the row without its bytes, saying who dropped it.
DROPPED = "dropped"
LISTABLE = (*SET_ASIDE, DROPPED)


def list_quarantine(
    session: Session, status: str = "quarantined", limit: int = 1000
) -> list[RawMessage]:
    """Raw messages set aside with this status (see LISTABLE), newest first."""
    stmt = (
        select(RawMessage)
        .where(RawMessage.status == status)
        .order_by(RawMessage.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def quarantined_ids(session: Session, status: str = "quarantined") -> list[int]:
    """Ids of every raw message set aside with this status, oldest first (for retry --all)."""
    stmt = select(RawMessage.id).where(RawMessage.status == status).order_by(RawMessage.id)
    return list(session.scalars(stmt))


def set_aside_message(session: Session, raw_id: int, *, lock: bool = False) -> RawMessage | None:
    """The raw message with this id if it is set aside (any SET_ASIDE status), else None."""
    stmt = select(RawMessage).where(RawMessage.id == raw_id, RawMessage.status.in_(SET_ASIDE))
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def drop_quarantined(
    session: Session, row: RawMessage, *, actor: str, why: str, now: datetime
) -> str:
    """Remove a set-aside message's bytes, keeping a tombstone that says who, when and why
    (and an event on its ticket, if it has one). Returns the recorded reason."""
    reason = (
        f"dropped by {actor} at {now.isoformat()}: {why or 'no reason given'} "
        f"(was {row.status}: {row.reason or 'no reason recorded'})"
    )
    if row.ticket_id is not None:
        ticket = session.get(Ticket, row.ticket_id)
        if ticket is not None:
            add_event(
                session,
                ticket,
                "quarantine_dropped",
                now,
                actor=actor,
                raw_id=row.id,
                sha256=row.sha256,
                was=row.status,
                reason=why,
            )
    row.status, row.raw, row.reason, row.processed_at = DROPPED, b"", reason[:4000], now
    return reason


def requeue_quarantined(session: Session, row: RawMessage) -> None:
    """Put a set-aside message back in line for the pipeline."""
    row.status, row.reason, row.processed_at = "pending", None, None


def checkpoint(session: Session, mailbox: str) -> ImapCheckpoint | None:
    return session.get(ImapCheckpoint, mailbox)


def advance_checkpoint(
    session: Session, mailbox: str, uidvalidity: int, last_uid: int, now: datetime
) -> None:
    """Record that every UID up to last_uid is stored (in the caller's transaction)."""
    row = session.get(ImapCheckpoint, mailbox)
    if row is None:
        session.add(
            ImapCheckpoint(
                mailbox=mailbox, uidvalidity=uidvalidity, last_uid=last_uid, updated_at=now
            )
        )
    else:
        row.uidvalidity, row.last_uid, row.updated_at = uidvalidity, last_uid, now
