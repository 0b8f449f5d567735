"""What a major incident's broadcasts left behind: their events (`broadcast`,
`broadcast_all_clear`, written by maildesk.tickets.broadcasts) and their mails, one
outbound message per subscriber, kept out of the requester's thread and the per-ticket
loop cap (a broadcast answers no mail, so it can build no loop)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from maildesk.store.db import for_update
from maildesk.store.models import Event, Message, Ticket

# The kinds of the messages (and outbox entries) of the mails to subscribers.
BROADCAST_MAILS = ("broadcast", "broadcast_all_clear")
EVENTS = BROADCAST_MAILS  # the events have the same names


def lock_ticket(session: Session, ticket_id: int) -> None:
    """Hold the ticket's row until the transaction ends (PostgreSQL), so that two daemons
    resolving or broadcasting on one incident take turns and the second sees the first's
    events: each all-clear is sent once. SQLite serialises writers anyway."""
    session.scalar(for_update(select(Ticket.id).where(Ticket.id == ticket_id), session))


def broadcast_events(session: Session, ticket_id: int) -> list[Event]:
    """The ticket's broadcasts and all-clears, oldest first, read afresh from the store."""
    stmt = (
        select(Event)
        .where(Event.ticket_id == ticket_id, Event.kind.in_(EVENTS))
        .order_by(Event.id)
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(stmt))


def answers_broadcast(
    session: Session, ticket_ids: Iterable[int], message_ids: Sequence[str]
) -> bool:
    """Do these Message-IDs (a reply's In-Reply-To/References) name a mail to subscribers
    of one of these tickets?"""
    if not message_ids:
        return False
    stmt = (
        select(Message.id)
        .where(
            Message.message_id.in_(list(message_ids)[:200]),
            Message.ticket_id.in_(list(ticket_ids)),
            Message.direction == "out",
            Message.kind.in_(BROADCAST_MAILS),
        )
        .limit(1)
    )
    return session.scalar(stmt) is not None
