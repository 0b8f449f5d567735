"""The queries behind the desk's reports: tickets, their status history, SLA breaches, rule
hits and mail counts between two instants, optionally for one queue.

Plain rows come back (frozen dataclasses, aware UTC datetimes); the report definitions in
`maildesk.reports` bucket them into days and compute the figures, so no SQL here depends on
the dialect.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from maildesk.store.models import Contact, Event, OutboxEntry, RawMessage, Ticket
from maildesk.terms import WORKING_STATUSES, OutboxStatus, RawStatus

# Events that change a ticket's status; "merged" only on the ticket merged away (its data
# has "into"; the target's "merged" event has "source" and changes nothing).
STATUS_EVENTS = ("status", "reopened", "merged")
S = TypeVar("S", bound=Select[*tuple[Any, ...]])  # a select of any columns


@dataclass(frozen=True, kw_only=True)
class TicketRow:
    """What a report needs of one ticket."""

    id: int
    queue: str
    priority: str
    status: str
    category: str | None
    assignee: str | None
    requester: str
    requester_name: str
    sla_policy: str | None
    created_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    response_breached_at: datetime | None
    resolution_breached_at: datetime | None


@dataclass(frozen=True)
class StatusChange:
    """One recorded status change of a ticket."""

    ticket_id: int
    at: datetime
    old: str | None
    new: str


@dataclass(frozen=True)
class Lifetime:
    """A ticket that may have been open during a period: when it came and how it changed."""

    ticket_id: int
    created_at: datetime
    changes: tuple[StatusChange, ...]  # oldest first, up to the period's end


def _ticket_rows(stmt: Select[Any]) -> Select[Any]:
    return stmt.add_columns(
        Ticket.id,
        Ticket.queue,
        Ticket.priority,
        Ticket.status,
        Ticket.category,
        Ticket.assignee,
        Contact.email,
        Contact.name,
        Ticket.sla_policy,
        Ticket.created_at,
        Ticket.first_response_at,
        Ticket.resolved_at,
        Ticket.sla_response_breached_at,
        Ticket.sla_resolution_breached_at,
    ).join(Contact, Contact.id == Ticket.requester_id)


def _row(values: Sequence[Any]) -> TicketRow:
    (tid, queue, priority, status, category, assignee, email, name, policy, created) = values[:10]
    first, resolved, response_breach, resolution_breach = values[10:14]
    return TicketRow(
        id=int(tid),
        queue=queue,
        priority=priority,
        status=status,
        category=category,
        assignee=assignee,
        requester=email,
        requester_name=name or "",
        sla_policy=policy,
        created_at=created,
        first_response_at=first,
        resolved_at=resolved,
        response_breached_at=response_breach,
        resolution_breached_at=resolution_breach,
    )


def _in_queue(stmt: S, queue: str | None) -> S:
    return stmt if queue is None else stmt.where(Ticket.queue == queue)


def tickets_created(
    session: Session, start: datetime, end: datetime, queue: str | None = None
) -> list[TicketRow]:
    """Tickets created in [start, end), oldest first (merged ones too: they came in)."""
    stmt = _ticket_rows(select()).where(Ticket.created_at >= start, Ticket.created_at < end)
    stmt = _in_queue(stmt, queue).order_by(Ticket.created_at, Ticket.id)
    return [_row(r) for r in session.execute(stmt)]


def tickets_breached(
    session: Session, start: datetime, end: datetime, queue: str | None = None
) -> list[TicketRow]:
    """Tickets with a first-response or resolution breach in [start, end)."""
    stmt = _ticket_rows(select()).where(
        or_(
            (Ticket.sla_response_breached_at >= start) & (Ticket.sla_response_breached_at < end),
            (Ticket.sla_resolution_breached_at >= start)
            & (Ticket.sla_resolution_breached_at < end),
        )
    )
    return [_row(r) for r in session.execute(_in_queue(stmt, queue).order_by(Ticket.id))]


def lifetimes(
    session: Session, start: datetime, end: datetime, queue: str | None = None
) -> list[Lifetime]:
    """Every ticket created before `end` that was not already done, unchanged since, at
    `start`, with its status changes up to `end`: enough to tell when it was open."""
    maybe_open = or_(
        Ticket.status.in_(WORKING_STATUSES),
        Ticket.status_changed_at.is_(None),
        Ticket.status_changed_at >= start,
    )
    stmt = _in_queue(select(Ticket.id, Ticket.created_at), queue).where(
        Ticket.created_at < end, maybe_open
    )
    created = {int(i): at for i, at in session.execute(stmt.order_by(Ticket.id))}
    events = (
        select(Event.ticket_id, Event.at, Event.kind, Event.data)
        .join(Ticket, Ticket.id == Event.ticket_id)
        .where(Event.kind.in_(STATUS_EVENTS), Event.at < end, Ticket.created_at < end, maybe_open)
        .order_by(Event.ticket_id, Event.at, Event.id)
    )
    changes: dict[int, list[StatusChange]] = {i: [] for i in created}
    for tid, at, kind, data in session.execute(_in_queue(events, queue)):
        change = _change(int(tid), at, kind, data or {})
        if change is not None and change.ticket_id in changes:
            changes[change.ticket_id].append(change)
    return [Lifetime(i, at, tuple(changes[i])) for i, at in created.items()]


def _change(ticket_id: int, at: datetime, kind: str, data: dict[str, Any]) -> StatusChange | None:
    if kind == "merged":
        return StatusChange(ticket_id, at, data.get("from"), "merged") if "into" in data else None
    new = data.get("to")
    return StatusChange(ticket_id, at, data.get("from"), str(new)) if new else None


def rule_hits(
    session: Session, start: datetime, end: datetime, queue: str | None = None
) -> Counter[str]:
    """How often each routing rule matched a new ticket in [start, end)."""
    stmt = (
        select(Event.data)
        .join(Ticket, Ticket.id == Event.ticket_id)
        .where(Event.kind == "routed", Event.at >= start, Event.at < end)
    )
    hits: Counter[str] = Counter()
    for data in session.scalars(_in_queue(stmt, queue)):
        hits.update(str(name) for name in (data or {}).get("matched") or ())
    return hits


@dataclass(frozen=True)
class MailTimes:
    """When mail came in, went out and was quarantined in a period."""

    received: list[datetime]
    sent: list[datetime]
    quarantined: list[datetime]


def mail_times(
    session: Session, start: datetime, end: datetime, queue: str | None = None
) -> MailTimes:
    """Accepted raw mail received, notifications sent and mail quarantined in [start, end);
    for a queue, the mail on its tickets (quarantined mail is on none)."""
    received = select(RawMessage.received_at, RawMessage.status).where(
        RawMessage.received_at >= start, RawMessage.received_at < end
    )
    sent = select(OutboxEntry.sent_at).where(
        OutboxEntry.status == OutboxStatus.SENT,
        OutboxEntry.sent_at >= start,
        OutboxEntry.sent_at < end,
    )
    if queue is not None:
        received = received.join(Ticket, Ticket.id == RawMessage.ticket_id)
        sent = sent.join(Ticket, Ticket.id == OutboxEntry.ticket_id)
    rows = list(session.execute(_in_queue(received, queue)))
    return MailTimes(
        received=[at for at, _ in rows],
        sent=[at for at in session.scalars(_in_queue(sent, queue)) if at is not None],
        quarantined=[at for at, status in rows if status == RawStatus.QUARANTINED],
    )
