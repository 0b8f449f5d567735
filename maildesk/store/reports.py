"""Mail about mail: reports already recorded on a ticket (bounces, read receipts), so a
second copy is recorded once; and the stored fragments of messages sent in parts."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import LargeBinary, func, select, text, update
from sqlalchemy.orm import Session

from maildesk.store.models import Event, RawMessage
from maildesk.terms import RawStatus

# Enough of a stored fragment to read its header block (its Content-Type and From).
HEAD_BYTES = 64 * 1024
MAX_SIBLINGS = 1000  # stored fragments looked at for one set


def hold(session: Session, name: str) -> None:
    """Hold a lock named `name` until the transaction ends, so two daemons do not decide
    about the same thing at once (PostgreSQL: an advisory lock; SQLite serialises every
    write transaction already)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def recorded_report(
    session: Session, ticket_id: int, kind: str, identity: str, since: datetime
) -> Event | None:
    """The event of kind `kind` on the ticket, since then, with this `identity` in its data."""
    stmt = (
        select(Event)
        .where(Event.ticket_id == ticket_id, Event.kind == kind, Event.at >= since)
        .order_by(Event.id)
    )
    return next((e for e in session.scalars(stmt) if e.data.get("identity") == identity), None)


@dataclass(frozen=True)
class StoredFragment:
    """A stored raw message that names a fragment set in its reason."""

    raw_id: int
    status: str
    size: int
    head: bytes  # the first HEAD_BYTES of its bytes
    envelope_from: str | None
    envelope_to: list[Any]


# Where a fragment of a set can stand: waiting, reassembled, or processed as ordinary mail.
FRAGMENT_STATUSES = (RawStatus.PARTIAL, RawStatus.REASSEMBLED, RawStatus.PROCESSED)


def fragments_named(
    session: Session, marker: str, since: datetime, *, exclude: int
) -> list[StoredFragment]:
    """Stored messages received since then whose reason contains `marker` (the words that
    name a fragment set), oldest first; the caller reads their heads to be sure."""
    stmt = (
        select(
            RawMessage.id,
            RawMessage.status,
            RawMessage.size,
            func.substr(RawMessage.raw, 1, HEAD_BYTES, type_=LargeBinary),
            RawMessage.envelope_from,
            RawMessage.envelope_to,
        )
        .where(
            RawMessage.status.in_(FRAGMENT_STATUSES),
            RawMessage.received_at >= since,
            RawMessage.reason.contains(marker, autoescape=True),
            RawMessage.id != exclude,
        )
        .order_by(RawMessage.id)
        .limit(MAX_SIBLINGS)
    )
    return [
        StoredFragment(int(i), str(s), int(n), bytes(h or b""), f, list(t or []))
        for i, s, n, h, f, t in session.execute(stmt)
    ]


def fragment_bytes(session: Session, raw_ids: Sequence[int]) -> dict[int, bytes]:
    """The whole bytes of these stored messages."""
    stmt = select(RawMessage.id, RawMessage.raw).where(RawMessage.id.in_(list(raw_ids)))
    return {int(i): bytes(r) for i, r in session.execute(stmt)}


def mark_fragments(session: Session, reasons: dict[int, str], status: str | None = None) -> None:
    """Give stored fragments their reason (and status): where their set stands now."""
    for raw_id, reason in reasons.items():
        values: dict[str, Any] = {"reason": reason[:4000]}
        if status is not None:
            values["status"] = status
        session.execute(update(RawMessage).where(RawMessage.id == raw_id).values(**values))


def requeue_fragments(session: Session, raw_ids: Sequence[int]) -> None:
    """Put waiting fragments back in line for the pipeline (to be decided about again)."""
    if raw_ids:
        session.execute(
            update(RawMessage)
            .where(RawMessage.id.in_(list(raw_ids)), RawMessage.status == RawStatus.PARTIAL)
            .values(status=RawStatus.PENDING, processed_at=None)
        )


def stale_fragments(session: Session, received_before: datetime, limit: int = 500) -> list[int]:
    """Fragments still waiting that were received by then, oldest first."""
    stmt = (
        select(RawMessage.id)
        .where(RawMessage.status == RawStatus.PARTIAL, RawMessage.received_at <= received_before)
        .order_by(RawMessage.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))
