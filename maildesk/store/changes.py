"""Change management's queries: the change calendar and the changes whose window notices
are due (maildesk.tickets.changes, maildesk.jobs)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from maildesk.store.db import for_update
from maildesk.store.models import Event, Ticket
from maildesk.terms import DONE_STATUSES, TicketType

STARTING_EVENT = "change_starting_notified"
PASSED_EVENT = "change_window_passed_notified"
PASSED_AFTER = timedelta(hours=1)  # a change still open this long after its window: notice


def scheduled_changes(
    session: Session, start: datetime | None = None, end: datetime | None = None
) -> list[Ticket]:
    """Changes with a window that touches [start, end) (either open-ended), by start."""
    stmt = select(Ticket).where(
        Ticket.type == TicketType.CHANGE,
        Ticket.change_start.is_not(None),
        Ticket.change_end.is_not(None),
    )
    if start is not None:
        stmt = stmt.where(Ticket.change_end > start)
    if end is not None:
        stmt = stmt.where(Ticket.change_start < end)
    return list(session.scalars(stmt.order_by(Ticket.change_start, Ticket.id)))


def next_change_notice(
    session: Session, kind: str, now: datetime, skip: Sequence[int] = ()
) -> Ticket | None:
    """One open change whose `kind` notice (STARTING_EVENT or PASSED_EVENT) is due at `now`
    and not yet recorded since its window was last scheduled, locked for this worker (SKIP
    LOCKED on PostgreSQL): a change moved to a new window is noticed again."""
    scheduled = aliased(Event)
    last = (
        select(func.max(scheduled.id))
        .where(scheduled.ticket_id == Ticket.id, scheduled.kind == "change_scheduled")
        .scalar_subquery()
    )
    sent = exists().where(
        and_(Event.ticket_id == Ticket.id, Event.kind == kind, Event.id > func.coalesce(last, 0))
    )
    due = (
        Ticket.change_start <= now
        if kind == STARTING_EVENT
        else Ticket.change_end <= now - PASSED_AFTER
    )
    stmt = (
        select(Ticket)
        .where(
            Ticket.type == TicketType.CHANGE,
            Ticket.change_start.is_not(None),
            Ticket.change_end.is_not(None),
            Ticket.status.not_in(DONE_STATUSES),
            due,
            ~sent,
        )
        .order_by(Ticket.change_start, Ticket.id)
        .limit(1)
    )
    if skip:
        stmt = stmt.where(Ticket.id.not_in(list(skip)))
    return session.scalar(for_update(stmt, session, skip_locked=True, of=Ticket))
