"""Queries the pipeline and the read commands need. Every SQL statement lives here."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer, selectinload

from maildesk.mail.message import MINTED_ID_DOMAIN
from maildesk.routing.proof import TokenCodec
from maildesk.store.models import (
    Contact,
    Event,
    ImapCheckpoint,
    Message,
    OutboxEntry,
    RawMessage,
    Setting,
    Ticket,
    TicketLink,
    Watcher,
)
from maildesk.terms import (
    DONE_STATUSES,
    SET_ASIDE,
    WORKING_STATUSES,
    OutboxStatus,
    RawStatus,
    Status,
)


def save_raw(
    session: Session,
    raw: bytes,
    *,
    origin: str,
    now: datetime,
    envelope_from: str | None = None,
    envelope_to: Sequence[str] = (),
    flush: bool = True,
) -> RawMessage:
    """Store raw bytes exactly as received, status pending. The caller commits (flush
    False: the caller flushes, several rows at once)."""
    row = RawMessage(
        received_at=now,
        origin=origin,
        envelope_from=envelope_from,
        envelope_to=list(envelope_to),
        size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        raw=raw,
        status=RawStatus.PENDING,
    )
    session.add(row)
    if flush:
        session.flush()
    return row


def raw_bytes(session: Session, raw_ids: Sequence[int]) -> list[tuple[int, bytes]]:
    """(id, raw bytes) of stored messages still pending."""
    if not raw_ids:
        return []
    stmt = select(RawMessage.id, RawMessage.raw).where(
        RawMessage.id.in_(list(raw_ids)), RawMessage.status == RawStatus.PENDING
    )
    return [(int(i), bytes(r)) for i, r in session.execute(stmt)]


def raw_exists(session: Session, sha256: str) -> bool:
    return (
        session.scalar(select(RawMessage.id).where(RawMessage.sha256 == sha256).limit(1))
        is not None
    )


def pending_raw_ids(session: Session, limit: int = 100) -> list[int]:
    stmt = (
        select(RawMessage.id).where(RawMessage.status == RawStatus.PENDING).order_by(RawMessage.id)
    )
    return list(session.scalars(stmt.limit(limit)))


def claim_raw(session: Session, raw_id: int, now: datetime) -> RawMessage | None:
    """Take a pending raw message for processing (its bytes not loaded); None if another
    worker got there first. On PostgreSQL the row is locked, so a second daemon waits
    and then finds it processed."""
    stmt = select(RawMessage).where(RawMessage.id == raw_id).options(defer(RawMessage.raw))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = session.scalar(stmt)
    if row is None or row.status != RawStatus.PENDING:
        return None
    row.status, row.processed_at = RawStatus.PROCESSED, now
    return row


def message_exists(session: Session, message_id: str) -> bool:
    stmt = select(Message.id).where(Message.message_id == message_id).limit(1)
    return session.scalar(stmt) is not None


def message_ids_exist(session: Session, message_ids: Sequence[str]) -> set[str]:
    if not message_ids:
        return set()
    stmt = select(Message.message_id).where(Message.message_id.in_(list(message_ids)))
    return set(session.scalars(stmt))


class StoreThreadIndex:
    """The ThreadIndex of maildesk.routing.thread, answered from the database.

    A reply token is checked by its HMAC (no lookup); tokens made before HMAC tokens were
    random and stored on the ticket, and still thread through that column.
    """

    def __init__(
        self, session: Session, tokens: TokenCodec | None = None, sender: str = ""
    ) -> None:
        self.session = session
        self.tokens = tokens
        self.sender = sender  # an agent token counts only for the agent it was minted for
        # The session's identity map holds objects weakly: keep the tickets looked up here,
        # so the pipeline's next get() of the same ticket needs no second query.
        self._seen: dict[int, Ticket] = {}

    def ticket_exists(self, ticket_id: int) -> bool:
        ticket = self.session.get(Ticket, ticket_id)
        if ticket is not None:
            self._seen[ticket_id] = ticket
        return ticket is not None

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
        verified = self.tokens.verify(token, self.sender) if self.tokens is not None else None
        if verified is not None:
            return verified.ticket_id if self.ticket_exists(verified.ticket_id) else None
        if "-" in token:
            return None
        return self.session.scalar(select(Ticket.id).where(Ticket.reply_token == token))


def new_contact(session: Session, email: str, name: str, now: datetime) -> Contact:
    """A contact for an address that has none (inserted with whatever refers to it)."""
    contact = Contact(email=email, name=name, created_at=now)
    session.add(contact)
    return contact


def contact(session: Session, email: str) -> Contact | None:
    return session.scalar(select(Contact).where(Contact.email == email))


def auto_replies_since(session: Session, contact: Contact, since: datetime) -> int:
    """Acknowledgements sent to this contact since then (for the auto-reply rate limit)."""
    if contact.id is None:
        return 0  # not even flushed yet: no mail has gone to it
    stmt = (
        select(func.count())
        .select_from(Message)
        .join(Ticket, Message.ticket_id == Ticket.id)
        .where(
            Ticket.requester_id == contact.id,
            Message.direction == "out",
            Message.kind == "acknowledgement",
            Message.created_at >= since,
        )
    )
    return int(session.scalar(stmt) or 0)


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


def tickets_opened_since(session: Session, contact: Contact | None, since: datetime) -> int:
    """New tickets this sender opened since then (for the flood guard)."""
    if contact is None or contact.id is None:
        return 0  # no such contact yet: no tickets
    stmt = (
        select(func.count())
        .select_from(Ticket)
        .where(Ticket.requester_id == contact.id, Ticket.created_at >= since)
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
    via: str = "mail",
    **data: Any,
) -> Event:
    """Append an event to the audit log: who (actor), how (via), and what changed and why."""
    event = Event(ticket_id=ticket.id, at=now, kind=kind, actor=actor, via=via, data=data)
    session.add(event)
    return event


def desk_secret(session: Session) -> str:
    """The desk's generated reply-token secret, created on first use (shared by all daemons)."""
    found = session.get(Setting, "reply_secret")
    if found is not None:
        return found.value
    try:
        with session.begin_nested():
            session.add(Setting(key="reply_secret", value=secrets.token_hex(32)))
    except IntegrityError:  # another daemon made it at the same moment
        pass
    return session.get_one(Setting, "reply_secret").value


def watchers(session: Session, ticket_id: int) -> list[str]:
    stmt = select(Watcher.email).where(Watcher.ticket_id == ticket_id).order_by(Watcher.id)
    return list(session.scalars(stmt))


def add_watchers(
    session: Session, ticket_id: int, emails: Sequence[str], by: str, now: datetime
) -> list[str]:
    """Add the addresses not yet watching; return those added."""
    present = set(watchers(session, ticket_id))
    added = [e for e in dict.fromkeys(emails) if e not in present]
    for email in added:
        session.add(Watcher(ticket_id=ticket_id, email=email, added_at=now, added_by=by))
    return added


def remove_watchers(session: Session, ticket_id: int, emails: Sequence[str]) -> list[str]:
    present = set(watchers(session, ticket_id))
    gone = [e for e in emails if e in present]
    if gone:
        session.execute(
            delete(Watcher).where(Watcher.ticket_id == ticket_id, Watcher.email.in_(gone))
        )
    return gone


def removed_watchers(session: Session, ticket_id: int) -> set[str]:
    """Addresses taken off the ticket's watchers (`#cc -x`) and not added back since.

    The audit log is the record: a `watchers` event lists who was added and who removed,
    in order, so no second table has to agree with it.
    """
    stmt = (
        select(Event.data)
        .where(Event.ticket_id == ticket_id, Event.kind == "watchers")
        .order_by(Event.id)
    )
    removed: set[str] = set()
    for data in session.scalars(stmt):
        removed.difference_update(data.get("added") or ())
        removed.update(data.get("removed") or ())
    return removed


def links(session: Session, ticket_id: int) -> list[tuple[int, str]]:
    """(linked ticket id, relation) pairs of a ticket."""
    stmt = (
        select(TicketLink.linked_id, TicketLink.relation)
        .where(TicketLink.ticket_id == ticket_id)
        .order_by(TicketLink.id)
    )
    return [(int(a), str(b)) for a, b in session.execute(stmt)]


def add_link(
    session: Session, a: int, b: int, relation_a: str, relation_b: str, now: datetime
) -> bool:
    """Link a and b (b is a's relation_a, a is b's relation_b); False if already linked."""
    if any(other == b for other, _ in links(session, a)):
        return False
    session.add(TicketLink(ticket_id=a, linked_id=b, relation=relation_a, created_at=now))
    session.add(TicketLink(ticket_id=b, linked_id=a, relation=relation_b, created_at=now))
    return True


def remove_link(session: Session, a: int, b: int) -> bool:
    result = session.execute(
        delete(TicketLink).where(
            ((TicketLink.ticket_id == a) & (TicketLink.linked_id == b))
            | ((TicketLink.ticket_id == b) & (TicketLink.linked_id == a))
        )
    )
    return bool(getattr(result, "rowcount", 0))


def move_messages(session: Session, source: int, target: int) -> int:
    """Move every message of one ticket to another (a merge); return how many."""
    result = session.execute(
        update(Message).where(Message.ticket_id == source).values(ticket_id=target)
    )
    return int(getattr(result, "rowcount", 0))


def public_thread(session: Session, ticket_id: int, limit: int = 20) -> list[Message]:
    """The ticket's requester-visible messages, oldest first (the last `limit`): their mail
    and ours to them, not an agent's own reply mail (they got our relay of it)."""
    stmt = (
        select(Message)
        .where(
            Message.ticket_id == ticket_id,
            Message.internal.is_(False),
            (Message.direction == "out") | (Message.kind == "mail"),
            # An id we minted for mail without one was never seen by anyone.
            Message.message_id.not_like(f"%@{MINTED_ID_DOMAIN}>"),
        )
        .order_by(Message.id.desc())
        .limit(limit)
    )
    return list(reversed(list(session.scalars(stmt))))


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
            .where(Ticket.assignee.in_(candidates), Ticket.status.in_(WORKING_STATUSES))
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
    if session.get_bind().dialect.name == "postgresql":
        # Several daemons on one database: each entry goes to exactly one sender.
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.scalars(stmt))


def next_outbox_due(session: Session) -> datetime | None:
    stmt = select(func.min(OutboxEntry.next_attempt_at)).where(
        OutboxEntry.status == OutboxStatus.QUEUED
    )
    return session.scalar(stmt)


# Raw messages kept but not on a ticket: processing failed, a rule dropped it, a sender
# flooded the desk, or a bounce of mail that is on no ticket.
# What `maildesk quarantine drop` leaves: the row without its bytes, saying who dropped it.
DROPPED = "dropped"
LISTABLE = (*SET_ASIDE, DROPPED)


def list_quarantine(
    session: Session, status: str = RawStatus.QUARANTINED, limit: int = 1000
) -> list[RawMessage]:
    """Raw messages set aside with this status (see LISTABLE), newest first."""
    stmt = (
        select(RawMessage)
        .where(RawMessage.status == status)
        .order_by(RawMessage.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def quarantined_ids(session: Session, status: str = RawStatus.QUARANTINED) -> list[int]:
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
    row.status, row.reason, row.processed_at = RawStatus.PENDING, None, None


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


def routed_by(session: Session, ticket: Ticket) -> list[str]:
    """The rules that matched when the ticket was routed (from its `routed` event)."""
    stmt = (
        select(Event.data)
        .where(Event.ticket_id == ticket.id, Event.kind == "routed")
        .order_by(Event.id)
        .limit(1)
    )
    data = session.scalar(stmt) or {}
    return [str(r) for r in data.get("matched", [])]


def next_sla_due(session: Session, now: datetime, skip: Sequence[int] = ()) -> Ticket | None:
    """One ticket whose SLA clock or lifecycle needs a look at `now`, locked for this worker.

    On PostgreSQL the row is taken FOR UPDATE SKIP LOCKED, so several daemons share the work
    and never handle one ticket twice; SQLite serialises writers anyway.
    """
    stmt = (
        select(Ticket)
        .where(Ticket.sla_next_check.is_not(None), Ticket.sla_next_check <= now)
        .order_by(Ticket.sla_next_check, Ticket.id)
        .limit(1)
    )
    if skip:
        stmt = stmt.where(Ticket.id.not_in(list(skip)))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=Ticket)
    return session.scalar(stmt)


def live_tickets(session: Session) -> list[Ticket]:
    """Tickets that a clock or an automatic step can still touch (not closed or merged)."""
    stmt = (
        select(Ticket)
        .where(Ticket.status.not_in((Status.CLOSED, Status.MERGED)))
        .order_by(Ticket.id)
    )
    return list(session.scalars(stmt))


def sla_tickets(session: Session) -> list[Ticket]:
    """Tickets under an SLA policy whose clock can still run, for `maildesk sla`."""
    stmt = (
        select(Ticket)
        .where(
            Ticket.sla_policy.is_not(None),
            Ticket.status.not_in(DONE_STATUSES),
        )
        .order_by(Ticket.id)
    )
    return list(session.scalars(stmt))
