"""Self-service queries: a requester's tickets for a status mail, the status mails already
sent to an address (their rate limit), and the tickets whose satisfaction survey is due."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from maildesk.store.db import for_update
from maildesk.store.models import Contact, Event, OutboxEntry, Ticket
from maildesk.terms import Status

# The events that settle a ticket's survey: sent, or not to be sent (and why).
SURVEY_EVENTS = ("survey_sent", "survey_skipped")


def requester_tickets(
    session: Session, contact: Contact, resolved_since: datetime
) -> tuple[list[Ticket], list[Ticket]]:
    """The contact's open tickets (newest update first), and those resolved or closed since
    `resolved_since`; never a merged one, never another contact's."""
    stmt = (
        select(Ticket)
        .where(Ticket.requester_id == contact.id, Ticket.status != Status.MERGED)
        .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
    )
    done = (Status.RESOLVED, Status.CLOSED)
    open_, resolved = [], []
    for ticket in session.scalars(stmt):
        if ticket.status not in done:
            open_.append(ticket)
        elif ticket.resolved_at is not None and ticket.resolved_at >= resolved_since:
            resolved.append(ticket)
    return open_, resolved


def status_mails_since(session: Session, kind: str, address: str, since: datetime) -> int:
    """Ticket-less mails of this kind (status lists) queued for this address since then."""
    stmt = select(OutboxEntry.recipients).where(
        OutboxEntry.kind == kind,
        OutboxEntry.ticket_id.is_(None),
        OutboxEntry.created_at >= since,
    )
    return sum(1 for rcpts in session.scalars(stmt) if address in (rcpts or ()))


def surveys_due(
    session: Session,
    resolved_between: tuple[datetime, datetime],
    queues: Sequence[str],
    *,
    skip: Sequence[int] = (),
    limit: int = 100,
) -> list[Ticket]:
    """Resolved or closed tickets (of these queues; none named: every queue) resolved
    within the window, that have neither had a survey nor been let off one."""
    start, end = resolved_between
    settled = exists().where(Event.ticket_id == Ticket.id, Event.kind.in_(SURVEY_EVENTS))
    stmt = select(Ticket).where(
        Ticket.status.in_((Status.RESOLVED, Status.CLOSED)),
        Ticket.resolved_at.is_not(None),
        Ticket.resolved_at > start,
        Ticket.resolved_at <= end,
        ~settled,
    )
    if queues:
        stmt = stmt.where(Ticket.queue.in_(list(queues)))
    if skip:
        stmt = stmt.where(Ticket.id.not_in(list(skip)))
    stmt = stmt.order_by(Ticket.resolved_at, Ticket.id).limit(limit)
    return list(session.scalars(for_update(stmt, session, skip_locked=True, of=Ticket)))


def survey_settled(session: Session, ticket_id: int) -> bool:
    """The ticket has had its survey, or been let off one (asked again once it is locked:
    another daemon may have sent it meanwhile)."""
    stmt = select(Event.id).where(Event.ticket_id == ticket_id, Event.kind.in_(SURVEY_EVENTS))
    return session.scalar(stmt.limit(1)) is not None
