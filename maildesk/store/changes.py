"""Change management's queries: the change calendar (with each change's CI links), the open
P1 incidents on CIs, and the changes whose window notices are due (maildesk.tickets.changes,
maildesk.jobs)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, aliased, selectinload

from maildesk.store.db import for_update
from maildesk.store.models import Event, Ticket, TicketCi
from maildesk.terms import DONE_STATUSES, Priority, TicketType

STARTING_EVENT = "change_starting_notified"
PASSED_EVENT = "change_window_passed_notified"
PASSED_AFTER = timedelta(hours=1)  # a change still open this long after its window: notice
IN_CHUNK = 500  # names bound in one IN (SQLite's limit on bound parameters is far above)


def scheduled_changes(
    session: Session, start: datetime | None = None, end: datetime | None = None
) -> list[Ticket]:
    """Changes with a window that touches [start, end) (either open-ended), by start, with
    their CI links (loaded in one more query, not one per change)."""
    stmt = select(Ticket).where(
        Ticket.type == TicketType.CHANGE,
        Ticket.change_start.is_not(None),
        Ticket.change_end.is_not(None),
    )
    if start is not None:
        stmt = stmt.where(Ticket.change_end > start)
    if end is not None:
        stmt = stmt.where(Ticket.change_start < end)
    stmt = stmt.options(selectinload(Ticket.ci_links))
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


def open_p1_incidents(session: Session, cis: Iterable[str]) -> dict[str, list[int]]:
    """The open P1 incidents (not done) linked to any of the CIs: for each CI that has
    any, their ids in order. One query per IN_CHUNK names, however many changes ask."""
    wanted = sorted(set(cis))
    found: dict[str, list[int]] = {}
    for i in range(0, len(wanted), IN_CHUNK):
        stmt = (
            select(TicketCi.ci, Ticket.id)
            .join(Ticket, Ticket.id == TicketCi.ticket_id)
            .where(
                TicketCi.ci.in_(wanted[i : i + IN_CHUNK]),
                Ticket.type == TicketType.INCIDENT,
                Ticket.priority == Priority.P1,
                Ticket.status.not_in(DONE_STATUSES),
            )
            .order_by(TicketCi.ci, Ticket.id)
        )
        for ci, ticket_id in session.execute(stmt):
            found.setdefault(ci, []).append(ticket_id)
    return found
