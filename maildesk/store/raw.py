"""Raw mail as it came in: storing and claiming it for the pipeline, the messages set aside
from it (quarantine), and the IMAP checkpoints that say how far each mailbox is stored."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, exists, func, literal, or_, select, union_all, update
from sqlalchemy.orm import Session, selectinload

from maildesk.store.blobs import set_blob
from maildesk.store.db import for_update
from maildesk.store.models import ImapCheckpoint, Message, RawBody, RawMessage, Ticket
from maildesk.store.tickets import add_event
from maildesk.terms import SET_ASIDE, RawStatus


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
        status=RawStatus.PENDING,
        body=RawBody(),
    )
    set_blob(session, row.body, "raw", raw)
    session.add(row)
    if flush:
        session.flush()
    return row


def count_pending(session: Session, cap: int) -> int:
    """Stored messages the pipeline has still to process, counted up to `cap` (an index
    scan that stops there, however long the backlog)."""
    pending = (
        select(RawMessage.id).where(RawMessage.status == RawStatus.PENDING).limit(cap).subquery()
    )
    return int(session.scalar(select(func.count()).select_from(pending)) or 0)


def raw_bytes(session: Session, raw_ids: Sequence[int]) -> list[tuple[int, bytes]]:
    """(id, raw bytes) of stored messages still pending."""
    if not raw_ids:
        return []
    stmt = (
        select(RawMessage.id, RawBody.raw)
        .join(RawBody, RawBody.raw_id == RawMessage.id)
        .where(RawMessage.id.in_(list(raw_ids)), RawMessage.status == RawStatus.PENDING)
    )
    return [(int(i), bytes(r)) for i, r in session.execute(stmt)]


# Asked for every message: built once (PREBUILT in maildesk.store.db).
_RAW_BY_SHA = select(RawMessage.id).where(RawMessage.sha256 == bindparam("sha")).limit(1)


def raw_exists(session: Session, sha256: str) -> bool:
    return session.scalar(_RAW_BY_SHA, {"sha": sha256}) is not None


_RAW_OR_MESSAGE = union_all(
    select(literal(1)).where(RawMessage.sha256 == bindparam("sha")),
    select(literal(1)).where(Message.message_id == bindparam("mid")),
).limit(1)


def raw_or_message_exists(session: Session, sha256: str, message_id: str) -> bool:
    """raw_exists or threads.message_exists, in one query (an import that has parsed ahead)."""
    return session.scalar(_RAW_OR_MESSAGE, {"sha": sha256, "mid": message_id}) is not None


def pending_raw_ids(session: Session, limit: int = 100) -> list[int]:
    stmt = (
        select(RawMessage.id).where(RawMessage.status == RawStatus.PENDING).order_by(RawMessage.id)
    )
    return list(session.scalars(stmt.limit(limit)))


def claim_pending(
    session: Session, holder: str, now: datetime, until: datetime, limit: int = 100
) -> list[int]:
    """Take up to `limit` pending messages, oldest first, for holder's pipeline until
    `until`: those no other daemon holds (never claimed, claim run out, or holder's own).

    On PostgreSQL the rows are taken FOR UPDATE SKIP LOCKED, so daemons claiming at the
    same moment get disjoint batches; the caller commits at once. On SQLite (one daemon)
    nothing is written: the pending messages, as pending_raw_ids."""
    if session.get_bind().dialect.name != "postgresql":
        return pending_raw_ids(session, limit)
    free = or_(
        RawMessage.claimed_until.is_(None),
        RawMessage.claimed_until <= now,
        RawMessage.claimed_by == holder,
    )
    stmt = (
        select(RawMessage.id)
        .where(RawMessage.status == RawStatus.PENDING, free)
        .order_by(RawMessage.id)
        .limit(limit)
    )
    ids = list(session.scalars(for_update(stmt, session, skip_locked=True)))
    if ids:
        session.execute(
            update(RawMessage)
            .where(RawMessage.id.in_(ids))
            .values(claimed_by=holder, claimed_until=until)
        )
    return ids


def claim_raw(session: Session, raw_id: int, now: datetime) -> RawMessage | None:
    """Take a pending raw message for processing (its bytes not loaded); None if it is not
    pending, or (PostgreSQL) another daemon's transaction is processing it right now: the
    row is taken FOR UPDATE SKIP LOCKED, so each message is processed exactly once and no
    daemon waits for another."""
    stmt = select(RawMessage).where(RawMessage.id == raw_id)
    row = session.scalar(for_update(stmt, session, skip_locked=True))
    if row is None or row.status != RawStatus.PENDING:
        return None
    return take_stored(row, now)


def take_stored(row: RawMessage, now: datetime) -> RawMessage:
    """Take for processing, as claim_raw does, a raw message the caller's transaction has
    just stored (import): no other transaction sees it yet, so there is no lock to take."""
    row.status, row.processed_at = RawStatus.PROCESSED, now
    return row


def defer_raw(session: Session, row: RawMessage, until: datetime) -> None:
    """Put a claimed message back, pending, for any daemon to take again once `until` has
    come (in the caller's transaction)."""
    row.status, row.processed_at = RawStatus.PENDING, None
    row.claimed_by, row.claimed_until = None, until


def pending_before(session: Session, raw_id: int) -> bool:
    """Whether a message stored before this one is still pending: on PostgreSQL, another
    daemon may be about to process it. False on SQLite (one daemon, in order)."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    earlier = select(RawMessage.id).where(
        RawMessage.status == RawStatus.PENDING, RawMessage.id < raw_id
    )
    return bool(session.scalar(select(exists(earlier))))


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
        .options(selectinload(RawMessage.body))
    )
    return list(session.scalars(stmt))


def quarantined_ids(session: Session, status: str = RawStatus.QUARANTINED) -> list[int]:
    """Ids of every raw message set aside with this status, oldest first (for retry --all)."""
    stmt = select(RawMessage.id).where(RawMessage.status == status).order_by(RawMessage.id)
    return list(session.scalars(stmt))


def set_aside_message(session: Session, raw_id: int, *, lock: bool = False) -> RawMessage | None:
    """The raw message with this id if it is set aside (any SET_ASIDE status), else None."""
    stmt = select(RawMessage).where(RawMessage.id == raw_id, RawMessage.status.in_(SET_ASIDE))
    return session.scalar(for_update(stmt, session) if lock else stmt)


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
