"""Tickets and what hangs off them: the audit log of events, watchers, links, messages,
the contacts who write in, and the agents' load for assignment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session, selectinload

from maildesk.mail.message import MINTED_ID_DOMAIN
from maildesk.store.broadcasts import BROADCAST_MAILS
from maildesk.store.db import for_update
from maildesk.store.models import Contact, Event, Message, Ticket, TicketLink, Watcher
from maildesk.terms import DONE_STATUSES, WORKING_STATUSES, Status

# session.info key: {"agent": ..., "os_user": ...} of a command-line session, recorded in
# every event it writes (see maildesk.cli.tickets).
CLI_IDENTITY = "cli_identity"
MAX_MERGE_DEPTH = 20  # contacts merged into contacts merged into ...: a cap, never reached


def new_contact(session: Session, email: str, name: str, now: datetime) -> Contact:
    """A contact for an address that has none (inserted with whatever refers to it)."""
    contact = Contact(email=email, name=name, created_at=now)
    session.add(contact)
    return contact


# Asked for every message: built once (PREBUILT in maildesk.store.db).
_CONTACT_BY_EMAIL = select(Contact).where(Contact.email == bindparam("email"))
_OPENED_SINCE = (
    select(func.count())
    .select_from(Ticket)
    .where(Ticket.requester_id == bindparam("contact"), Ticket.created_at >= bindparam("since"))
)


def contact(session: Session, email: str) -> Contact | None:
    """The contact an address belongs to: its own, or the one it was merged into."""
    found = session.scalar(_CONTACT_BY_EMAIL, {"email": email})
    for _ in range(MAX_MERGE_DEPTH):
        if found is None or found.merged_into_id is None:
            return found
        found = session.get_one(Contact, found.merged_into_id)
    return found


def tickets_opened_since(session: Session, contact: Contact | None, since: datetime) -> int:
    """New tickets this sender opened since then (for the flood guard)."""
    if contact is None or contact.id is None:
        return 0  # no such contact yet: no tickets
    # Tickets of earlier messages were flushed by their savepoints; the message at hand has
    # opened none yet, so an autoflush here would only write its rows early.
    with session.no_autoflush:
        return int(session.scalar(_OPENED_SINCE, {"contact": contact.id, "since": since}) or 0)


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
    if via == "cli" and CLI_IDENTITY in session.info:
        data = {**session.info[CLI_IDENTITY], **data}  # the agent and the OS user behind it
    event = Event(ticket_id=ticket.id, at=now, kind=kind, actor=actor, via=via, data=data)
    session.add(event)
    return event


# Asked for every notification's context: built once (PREBUILT in maildesk.store.db).
_WATCHERS = (
    select(Watcher.email).where(Watcher.ticket_id == bindparam("ticket")).order_by(Watcher.id)
)


def watchers(session: Session, ticket_id: int) -> list[str]:
    return list(session.scalars(_WATCHERS, {"ticket": ticket_id}))


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
            Message.kind.not_in(BROADCAST_MAILS),  # to subscribers, not to the requester
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
    session: Session,
    *,
    status: str | None = None,
    queue: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[Ticket]:
    """Tickets newest first, optionally of one status and queue; `offset` pages on."""
    stmt = select(Ticket).order_by(Ticket.id.desc()).limit(limit).offset(offset)
    stmt = stmt.options(selectinload(Ticket.ci_links))
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
            selectinload(Ticket.ci_links),
        )
    )
    return session.scalar(stmt)


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
    return session.scalar(for_update(stmt, session, skip_locked=True, of=Ticket))


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


def open_ticket_counts(session: Session) -> list[tuple[str, str, str, int]]:
    """Tickets not resolved, closed or merged: (queue, status, priority, count)."""
    stmt = (
        select(Ticket.queue, Ticket.status, Ticket.priority, func.count())
        .where(Ticket.status.not_in(DONE_STATUSES))
        .group_by(Ticket.queue, Ticket.status, Ticket.priority)
    )
    return [(q, s, p, int(n)) for q, s, p, n in session.execute(stmt)]


def open_tickets_by_queue(session: Session) -> dict[str, int]:
    """How many tickets still being worked on (not resolved, closed or merged) each queue has."""
    counts: dict[str, int] = {}
    for queue, _status, _priority, n in open_ticket_counts(session):
        counts[queue] = counts.get(queue, 0) + n
    return counts


def move_queue(
    session: Session, old: str, new: str, now: datetime, *, actor: str, via: str = "cli"
) -> int:
    """Move every ticket of queue `old` (open or not) to `new`, each with a `queue` event."""
    stmt = select(Ticket).where(Ticket.queue == old).order_by(Ticket.id)
    tickets = list(session.scalars(for_update(stmt, session, of=Ticket)))
    for ticket in tickets:
        ticket.queue = new
        add_event(session, ticket, "queue", now, actor=actor, via=via, **{"from": old, "to": new})
    return len(tickets)
