"""The ticket listing: which tickets `maildesk tickets` (and the HTTP API) shows, in what
order. One filter, one query, so every caller lists the same tickets for the same question."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, or_, select
from sqlalchemy.orm import Session, selectinload

from maildesk.store.models import Ticket
from maildesk.terms import DONE_STATUSES

# How `sort` orders: due soonest first (none last), the rest newest first or P1 first.
SORTS = ("created", "updated", "due", "priority")
UNASSIGNED = "none"  # `assignee=("none",)`: tickets nobody has


@dataclass(frozen=True)
class TicketFilter:
    """What to list. Empty tuples filter nothing; with no `statuses`, only open tickets
    (not resolved, closed or merged) unless `everything`. `assignees` may name
    `UNASSIGNED`."""

    statuses: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    assignees: tuple[str, ...] = ()
    everything: bool = False
    sort: str = "created"
    limit: int = 1000
    offset: int = 0


def next_due(ticket: Ticket) -> datetime | None:
    """The SLA target the ticket has to meet next: the first response while it is not
    answered (or the resolution, if that is sooner), else the resolution; None without one."""
    due = [ticket.sla_resolution_due]
    if ticket.first_response_at is None:
        due.append(ticket.sla_response_due)
    known = [d for d in due if d is not None]
    return min(known) if known else None


def _due_column() -> Any:
    """`next_due` in SQL, portable to SQLite and PostgreSQL (no LEAST/MIN of two values)."""
    response = and_(
        Ticket.first_response_at.is_(None),
        Ticket.sla_response_due.is_not(None),
        or_(
            Ticket.sla_resolution_due.is_(None),
            Ticket.sla_response_due < Ticket.sla_resolution_due,
        ),
    )
    return case((response, Ticket.sla_response_due), else_=Ticket.sla_resolution_due)


def _order(sort: str) -> list[Any]:
    if sort == "due":
        due = _due_column()
        return [due.is_(None), due, Ticket.id.desc()]
    if sort == "updated":
        return [Ticket.updated_at.desc(), Ticket.id.desc()]
    if sort == "priority":
        return [Ticket.priority, Ticket.updated_at.desc(), Ticket.id.desc()]
    if sort == "created":
        return [Ticket.id.desc()]
    raise ValueError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")


def find_tickets(session: Session, wanted: TicketFilter) -> list[Ticket]:
    """The tickets `wanted` describes, in its order."""
    stmt = select(Ticket).order_by(*_order(wanted.sort)).limit(wanted.limit)
    stmt = stmt.offset(wanted.offset).options(selectinload(Ticket.ci_links))
    if wanted.statuses:
        stmt = stmt.where(Ticket.status.in_(wanted.statuses))
    elif not wanted.everything:
        stmt = stmt.where(Ticket.status.not_in([str(s) for s in DONE_STATUSES]))
    if wanted.priorities:
        stmt = stmt.where(Ticket.priority.in_(wanted.priorities))
    if wanted.queues:
        stmt = stmt.where(Ticket.queue.in_(wanted.queues))
    if wanted.assignees:
        named = [a for a in wanted.assignees if a != UNASSIGNED]
        who = [Ticket.assignee.in_(named)] if named else []
        if UNASSIGNED in wanted.assignees:
            who.append(Ticket.assignee.is_(None))
        stmt = stmt.where(or_(*who))
    return list(session.scalars(stmt))
